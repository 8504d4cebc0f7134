"""The whole local system for the API tests, as processes: a Redis of its own (so it can be
killed), Cassandra behind a proxy (so it can be cut), topics of its own, the ingest service, a
feature worker, the four gRPC services and the API, all on the trained test platform.

Budgets are generous here (2 s, 500 ms per stage): these tests check which rung of the ladder
answers when a dependency is gone, not how fast; `make bench-api` measures speed.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from recsys.config import Settings
from recsys.lake import load_catalog
from recsys.models import ModelRegistry
from recsys_pipelines.fallbacks import run_fallbacks
from tests.features_support import create_topics, delete_topics, running_worker, worker_env
from tests.integration.serving.conftest import Platform
from tests.serving_support import ServingProcess, free_ports, start_service
from tests.tcp_proxy import TcpProxy

__all__ = ["ApiSystem", "PrivateRedis", "api_system"]

GRPC_SERVICES = ("featurestore", "candidates", "ranker", "experiments")


class PrivateRedis:
    """A redis-server of the tests' own that keeps its data across a kill (append-only file)."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_ports(1)[0]
        self._dir = data_dir
        self._dir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is installed by `recsys infra up`"
        self.process = subprocess.Popen(
            [
                binary,
                *("--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "yes", "--appendfsync", "always", "--dir", str(self._dir)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while self._ping() != b"PONG":
            assert time.monotonic() < deadline, "private redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def _ping(self) -> bytes:
        found = subprocess.run(
            ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, check=False
        )
        return found.stdout.strip()


@dataclass
class ApiSystem:
    platform: Platform
    root: Path
    redis: PrivateRedis
    cassandra: TcpProxy
    topics: dict[str, str]
    env: dict[str, str]  # what every process of the system shares
    services: dict[str, ServingProcess] = field(default_factory=dict)
    ports: dict[str, tuple[int, int]] = field(default_factory=dict)
    features_metrics_port: int = 0  # the feature worker's /metrics

    @property
    def api_url(self) -> str:
        return f"http://{self.services['api'].address}"

    def start(self, name: str) -> ServingProcess:
        """Start (or start again, on the same ports) one of the system's services."""
        env = dict(self.env)
        if name == "api":
            env.update(
                {
                    f"RECSYS_API__{s.upper()}_TARGET": f"127.0.0.1:{self.ports[s][0]}"
                    for s in GRPC_SERVICES
                }
            )
            env["RECSYS_INGEST__PORT"] = str(self.ports["ingest"][0])
        process = start_service(name, self.root, env, ports=self.ports[name])
        self.services[name] = process
        return process

    def kill(self, name: str) -> None:
        process = self.services[name].process
        process.kill()
        process.wait()

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.api_url}{path}", params=params, timeout=10)

    def recommend(self, user_id: str, **params: Any) -> dict[str, Any]:
        response = self.get(f"/v1/recommendations/{user_id}", **params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def wait_http_ready(process: ServingProcess, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            raise RuntimeError(f"{process.name} exited: {process.tail()}")
        try:
            if httpx.get(f"http://{process.address}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{process.name} not ready after {timeout_s} s: {process.tail()}")


@contextmanager
def api_system(platform: Platform, infra: Settings, root: Path) -> Iterator[ApiSystem]:
    unique = uuid.uuid4().hex[:8]
    worker = worker_env(
        infra,
        unique=f"api-{unique}",
        keyspace=platform.settings.cassandra.keyspace,
        key_prefix=platform.settings.redis.key_prefix,
        data_dir=root / "features-data",
    )
    topics = {
        "events": worker["RECSYS_FEATURES__EVENTS_TOPIC"],
        "late": worker["RECSYS_FEATURES__LATE_TOPIC"],
        "sessions": worker["RECSYS_FEATURES__SESSIONS_TOPIC"],
        "dlq": worker["RECSYS_FEATURES__DEAD_LETTER_TOPIC"],
        "served": f"test.api-{unique}.served",
        "exposures": f"test.api-{unique}.exposures",
    }
    asyncio.run(create_topics(infra, list(topics.values()), 3))
    with ExitStack() as stack:
        stack.callback(lambda: asyncio.run(delete_topics(infra, f"test.api-{unique}.")))
        redis = PrivateRedis(root / "redis")
        redis.start()
        stack.callback(redis.kill)
        cassandra = stack.enter_context(TcpProxy(infra.cassandra.port))
        env = {
            **platform.env,
            "RECSYS_REDIS__PORT": str(redis.port),
            "RECSYS_CASSANDRA__PORT": str(cassandra.port),
            "RECSYS_INGEST__TOPIC": topics["events"],
            "RECSYS_EXPERIMENTS__EXPOSURES_TOPIC": topics["exposures"],
            "RECSYS_API__IMPRESSIONS_TOPIC": topics["events"],
            "RECSYS_API__SERVED_TOPIC": topics["served"],
            # Every request reads the stores: an outage shows at once, a play within a second.
            "RECSYS_FEATURESTORE__REALTIME_CACHE_TTL_S": "0",
            "RECSYS_FEATURESTORE__BATCH_CACHE_TTL_S": "0",
            "RECSYS_API__BUDGET_MS": "2000",
            "RECSYS_API__EXPERIMENTS_MS": "500",
            "RECSYS_API__FEATURES_MS": "500",
            "RECSYS_API__CANDIDATES_MS": "500",
            "RECSYS_API__RANKING_MS": "500",
            "RECSYS_API__FALLBACK_MS": "500",
            "RECSYS_API__BREAKER_RECOVERY_S": "0.5",
            # A busy test machine must not shed: these tests are about the ladder's rungs.
            "RECSYS_API__OVERLOAD_LAG_MS": "5000",
            "RECSYS_API__SHED_LAG_MS": "10000",
        }
        # The fallback lists of the platform's world, in the registry and this Redis.
        fallback_settings = platform.settings.model_copy(
            update={"redis": platform.settings.redis.model_copy(update={"port": redis.port})}
        )
        run_fallbacks(
            fallback_settings,
            load_catalog(platform.settings.lake),
            ModelRegistry(platform.settings.models.root),
            platform.world.last_day,
        )
        # All at once: ports drawn one by one could repeat one not yet bound.
        names = ("ingest", *GRPC_SERVICES, "api")
        features_metrics_port, *listeners = free_ports(1 + 2 * len(names))
        worker.update(
            {
                "RECSYS_REDIS__PORT": str(redis.port),
                "RECSYS_CASSANDRA__PORT": str(infra.cassandra.port),
                "RECSYS_METRICS__PORT": str(features_metrics_port),
            }
        )
        stack.enter_context(running_worker(worker, root / "features.log"))
        system = ApiSystem(
            platform,
            root,
            redis,
            cassandra,
            topics,
            env,
            features_metrics_port=features_metrics_port,
        )
        for i, name in enumerate(names):
            system.ports[name] = (listeners[2 * i], listeners[2 * i + 1])
        for name in ("ingest", *GRPC_SERVICES):
            system.start(name)
        stack.callback(lambda: [p.terminate() for p in system.services.values()])
        wait_http_ready(system.services["ingest"])
        for name in GRPC_SERVICES:
            system.services[name].wait_serving()
        wait_http_ready(system.start("api"))
        yield system


def wait_level(
    system: ApiSystem, user_id: str, level: int, timeout_s: float = 60.0, **params: Any
) -> dict[str, Any]:
    """Ask until an answer comes at ``level`` (a wait, not a timing check)."""
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = system.recommend(user_id, **params)
        if body["level"] == level:
            return body
        time.sleep(0.2)
    raise AssertionError(f"no level {level} answer within {timeout_s} s; last: {body}")
