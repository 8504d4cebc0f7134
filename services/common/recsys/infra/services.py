"""The platform's own services as local processes, managed like the servers they depend on.

Each service runs its console script from the virtualenv (``recsys-ingest`` ...) and counts as
ready when a real request says so: the ingest API's readiness endpoint answers 200; a stream
worker (``recsys-features``, ``recsys-bronze``) exports its readiness gauge as 1 on its own
``/metrics`` port, which it gets through ``RECSYS_METRICS__PORT`` in its environment.
"""

from __future__ import annotations

import abc
import asyncio
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from recsys.infra.names import FEATURES_GROUP
from recsys.infra.server import InfraError, Server

if TYPE_CHECKING:
    from recsys.config import GrpcServiceSettings, Settings

__all__ = [
    "FEATURES_GROUP",
    "ApiService",
    "BronzeService",
    "FeaturesWorker",
    "GrpcService",
    "HttpService",
    "IngestService",
    "MetricsReadyService",
    "features_index",
    "features_worker_name",
    "http_get",
    "metric_value",
]

_WORKER_NAME = re.compile(rf"^{FEATURES_GROUP}-([1-9][0-9]*)$")


def _script(name: str) -> str:
    # Console scripts live beside the interpreter of the virtualenv running us.
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise InfraError(f"{path} is missing; run `make venv` to install the services")
    return str(path)


def features_worker_name(index: int) -> str:
    """``features-<index>``, 1-based."""
    if index < 1:
        raise ValueError(f"feature workers are numbered from 1, not {index}")
    return f"{FEATURES_GROUP}-{index}"


def features_index(name: str) -> int | None:
    """The index in a worker name (``features-2`` → 2), or None if ``name`` is not one."""
    match = _WORKER_NAME.match(name)
    return int(match.group(1)) if match else None


def metric_value(exposition: str, name: str) -> float | None:
    """The value of the unlabelled sample ``name`` in a Prometheus text exposition, if any."""
    # Imported here: prometheus_client loads its whole exposition stack (~0.1 s).
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    return None


# The standard library's client, not httpx: a probe is one GET on loopback, and importing httpx
# (with the command line it loads) would cost `recsys services status` ~0.3 s of its 1 s budget.
# No proxy handler: a loopback probe must not go through $http_proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


async def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, str]:
    """GET ``url`` in a worker thread: (status code, body). Raises OSError if unreachable."""

    def get() -> tuple[int, str]:
        try:
            with _OPENER.open(url, timeout=timeout_s) as response:
                return int(response.status), response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:  # an answer all the same: report its status
            return exc.code, exc.read().decode(errors="replace")

    return await asyncio.to_thread(get)


class HttpService(Server):
    """A FastAPI service: ready when its ``/readyz`` answers 200."""

    supervised = True

    @property
    def host_port(self) -> tuple[str, int]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        host, port = self.host_port
        return f"http://{host}:{port}"

    @property
    def address(self) -> str:
        host, port = self.host_port
        return f"{host}:{port}"

    @property
    def ports(self) -> list[int]:
        return [self.host_port[1]]

    def prepare(self) -> str:
        self.ensure_dirs()
        return ""

    def argv(self) -> list[str]:
        return [_script(f"recsys-{self.name}")]

    async def probe(self) -> None:
        status, body = await http_get(f"{self.url}/readyz")
        if status != 200:
            raise InfraError(f"{self.name} not ready: {status} {body[:200]}")


class IngestService(HttpService):
    name = "ingest"

    @property
    def host_port(self) -> tuple[str, int]:
        return self.settings.ingest.host, self.settings.ingest.port


class ApiService(HttpService):
    name = "api"

    @property
    def host_port(self) -> tuple[str, int]:
        return self.settings.api.host, self.settings.api.port


class MetricsReadyService(Server):
    """A worker without an API: ready when its ``/metrics`` exports ``ready_metric`` as 1."""

    script: str
    ready_metric: str
    supervised = True
    host = "127.0.0.1"  # where the probe connects; the metrics listener binds every interface

    @property
    @abc.abstractmethod
    def metrics_port(self) -> int:
        """Where its ``/metrics`` listens (passed to it as ``RECSYS_METRICS__PORT``)."""

    @property
    def metrics_url(self) -> str:
        return f"http://{self.address}/metrics"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.metrics_port}"

    @property
    def ports(self) -> list[int]:
        return [self.metrics_port]

    def prepare(self) -> str:
        self.ensure_dirs()
        return ""

    def argv(self) -> list[str]:
        return [_script(self.script)]

    def env(self) -> dict[str, str]:
        return {"RECSYS_METRICS__PORT": str(self.metrics_port)}

    async def probe(self) -> None:
        status, body = await http_get(self.metrics_url)
        if status != 200:
            raise InfraError(f"{self.name}: GET {self.metrics_url} answered {status}")
        value = metric_value(body, self.ready_metric)
        if value != 1:
            shown = "absent" if value is None else f"{value:g}"
            raise InfraError(f"{self.name} not ready: {self.ready_metric} is {shown}")


class FeaturesWorker(MetricsReadyService):
    """One worker of the feature stream job; all of them share one consumer group."""

    script = "recsys-features"
    # Set once the worker joined its group and recovered its partitions' state.
    ready_metric = "recsys_features_ready"

    def __init__(self, settings: Settings, index: int) -> None:
        self.index = index
        self.name = features_worker_name(index)
        super().__init__(settings)

    @property
    def metrics_port(self) -> int:
        return self.settings.services.features_port(self.index)

    def env(self) -> dict[str, str]:
        # Each worker its own Faust data directory (a shared one would be shared local state).
        configured = self.settings.features.data_dir
        data_dir = configured / self.name if configured else self.data_dir
        return {
            **super().env(),
            "RECSYS_FEATURES__DATA_DIR": str(data_dir),
            # Static membership: a restarted worker takes its partitions back at once.
            "RECSYS_FEATURES__INSTANCE_ID": self.name,
        }


class BronzeService(MetricsReadyService):
    """The bronze lake writer (Kafka events → Iceberg), one process."""

    name = "bronze"
    script = "recsys-bronze"
    # Set once it joined its group and sought its partitions to the table's offsets.
    ready_metric = "recsys_bronze_ready"

    @property
    def metrics_port(self) -> int:
        return self.settings.services.bronze_metrics_port


class GrpcService(Server):
    """A gRPC serving service (featurestore, candidates, ranker): ready when the standard health
    service answers SERVING, which it does once its stores and models are loaded. Its settings
    section (``settings.<name>``) gives its address and its ``/metrics`` port."""

    supervised = True

    def __init__(self, settings: Settings, name: str) -> None:
        self.name = name
        super().__init__(settings)
        self._section: GrpcServiceSettings = getattr(settings, name)

    @property
    def address(self) -> str:
        return self._section.address

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self._section.metrics_port}/metrics"

    @property
    def ports(self) -> list[int]:
        return [self._section.port, self._section.metrics_port]

    def prepare(self) -> str:
        self.ensure_dirs()
        return ""

    def argv(self) -> list[str]:
        return [_script(f"recsys-{self.name}")]

    async def probe(self) -> None:
        # Imported here: grpc costs `recsys services status` ~0.2 s, and only these need it.
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        target = self.address.replace("0.0.0.0", "127.0.0.1")
        async with grpc.aio.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2.0)
            except grpc.aio.AioRpcError as exc:
                raise InfraError(f"{self.name}: health check failed: {exc.code().name}") from None
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            state = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            raise InfraError(f"{self.name} not ready: health says {state}")

    async def detail(self) -> str:
        """What it serves, from its ``/metrics`` (e.g. ``two_tower v0003``, ``config 2026-1``)."""
        from prometheus_client.parser import text_string_to_metric_families

        try:
            status, body = await http_get(self.metrics_url)
        except OSError:
            return ""
        if status != 200:
            return ""
        # The registry versions served, and the experiments configuration's version.
        shown = {"recsys_serving_model_version": "{model} {version}"}
        shown["recsys_experiments_config_version"] = "config {version}"
        versions = [
            shown[family.name].format(**s.labels)
            for family in text_string_to_metric_families(body)
            if family.name in shown
            for s in family.samples
            if s.value == 1
        ]
        return ", ".join(sorted(versions))
