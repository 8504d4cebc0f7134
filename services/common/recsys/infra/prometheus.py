"""Prometheus from Debian's package, with the project's own configuration: it scrapes every
service and worker `recsys services` runs, and loads the rules the chart ships
(charts/recsys/files/prometheus/*.rules.yml), so the SLO alerts evaluate locally as they will in
a cluster. Installed on first use when we are root, like redis-server."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from recsys.config import Settings, repo_root
from recsys.infra.apt import apt_install
from recsys.infra.server import InfraError, Server

__all__ = ["RULES_DIR", "PrometheusServer", "scrape_config"]

PACKAGE = "prometheus"
RULES_DIR = repo_root() / "charts" / "recsys" / "files" / "prometheus"


def scrape_config(settings: Settings) -> dict[str, Any]:
    """prometheus.yml: one job per platform process (``recsys-<name>``), the rule files."""
    from recsys.infra.manager import servers
    from recsys.infra.names import SERVICE_NAMES
    from recsys.infra.services import GrpcService, HttpService, MetricsReadyService

    jobs: dict[str, list[str]] = {}
    for server in servers(settings, SERVICE_NAMES):
        if isinstance(server, HttpService):
            target = server.address
        elif isinstance(server, MetricsReadyService | GrpcService):
            target = server.metrics_url.removeprefix("http://").removesuffix("/metrics")
        else:
            continue
        job = "recsys-features" if server.name.startswith("features-") else f"recsys-{server.name}"
        jobs.setdefault(job, []).append(target)
    interval = f"{settings.prometheus.scrape_interval_s}s"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in sorted(RULES_DIR.glob("*.rules.yml"))],
        "scrape_configs": [
            {
                "job_name": "prometheus",
                "static_configs": [
                    {"targets": [f"{settings.prometheus.host}:{settings.prometheus.port}"]}
                ],
            },
            *(
                {"job_name": job, "static_configs": [{"targets": targets}]}
                for job, targets in jobs.items()
            ),
        ],
    }


class PrometheusServer(Server):
    name = "prometheus"

    @property
    def address(self) -> str:
        return f"{self.settings.prometheus.host}:{self.settings.prometheus.port}"

    @property
    def ports(self) -> list[int]:
        return [self.settings.prometheus.port]

    @property
    def config_path(self) -> Path:
        return self.data_dir / "prometheus.yml"

    def prepare(self) -> str:
        import yaml

        self.ensure_dirs()
        # Written at every start: the services' ports follow the settings.
        self.config_path.write_text(yaml.safe_dump(scrape_config(self.settings), sort_keys=False))
        if shutil.which("prometheus"):
            return f"prometheus found; config {self.config_path}"
        apt_install(PACKAGE)
        return f"installed {PACKAGE} with apt-get; config {self.config_path}"

    def argv(self) -> list[str]:
        binary = shutil.which("prometheus")
        if binary is None:
            raise InfraError("prometheus is not installed")
        p = self.settings.prometheus
        return [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
            f"--storage.tsdb.retention.time={p.retention}",
            f"--web.listen-address={p.host}:{p.port}",
            "--web.enable-lifecycle",
        ]

    async def probe(self) -> None:
        from recsys.infra.services import http_get

        status, body = await http_get(f"{self.settings.prometheus.url}/-/ready")
        if status != 200:
            raise InfraError(f"prometheus not ready: {status} {body[:200]}")
