"""Every metric a Grafana dashboard panel or a Prometheus rule names is one the running system
exports: the whole system runs (ingest, the feature worker, the bronze writer, the four gRPC
services and the API, as processes), each process's /metrics is scraped, and the names the
PromQL reads must be among the scraped series, the recording rules' outputs or Prometheus's own.
A renamed metric, or a typo in a dashboard, fails here instead of drawing an empty panel."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recsys.infra.server import free_ports
from tests.integration.serving.api_system import ApiSystem
from tests.promql_names import (
    BUILTIN,
    dashboard_expressions,
    exported_names,
    recorded_names,
    rule_expressions,
    unknown_names,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bronze_metrics(
    api_platform: ApiSystem, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A bronze writer beside the system (its metrics are all this test needs of it)."""
    port = free_ports(1)[0]
    log = tmp_path_factory.mktemp("bronze") / "bronze.log"
    env = {
        **os.environ,
        **api_platform.env,
        "RECSYS_METRICS__PORT": str(port),
        "RECSYS_LOG__FORMAT": "console",
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "recsys-bronze")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _scrape(url: str, timeout_s: float = 60.0) -> set[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                families = text_string_to_metric_families(response.text)
                return exported_names((f.name, f.type) for f in families)
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout_s} s")
        time.sleep(0.5)


def _endpoints(system: ApiSystem, bronze: str) -> dict[str, str]:
    endpoints = {
        name: f"http://127.0.0.1:{metrics_port}/metrics"
        for name, (_, metrics_port) in system.ports.items()
        if name not in ("api", "ingest")
    }
    endpoints["api"] = f"{system.api_url}/metrics"
    endpoints["ingest"] = f"http://{system.services['ingest'].address}/metrics"
    endpoints["features"] = f"http://127.0.0.1:{system.features_metrics_port}/metrics"
    endpoints["bronze"] = bronze
    return endpoints


def test_every_metric_the_dashboards_and_rules_name_is_exported(
    api_platform: ApiSystem, bronze_metrics: str
) -> None:
    api_platform.recommend("u0000001", k=5)  # a served list: every request-path family is live
    exported: set[str] = set()
    per_process = {}
    for name, url in _endpoints(api_platform, bronze_metrics).items():
        per_process[name] = _scrape(url)
        exported |= per_process[name]
    # Each process exports its own families (a scrape of the wrong port would not).
    assert any(n.startswith("recsys_api_") for n in per_process["api"])
    assert any(n.startswith("recsys_features_") for n in per_process["features"])
    assert any(n.startswith("recsys_bronze_") for n in per_process["bronze"])
    assert any(n.startswith("recsys_experiments_") for n in per_process["experiments"])
    known = exported | recorded_names() | BUILTIN

    dashboards = dashboard_expressions()
    assert len(dashboards) > 30
    assert unknown_names(dashboards, known) == {}
    assert unknown_names(rule_expressions(), known) == {}
    # The same check on a typo'd copy of a real query reports exactly the typo.
    typo = {
        "typo": dashboards["overview/Answers per second by status/A"].replace("requests", "requets")
    }
    assert unknown_names(typo, known) == {"typo": {"recsys_api_requets_total"}}
