"""The local Prometheus `recsys infra up` runs: it loads the chart's rule files, evaluates them
without errors, scrapes itself, and has a scrape job for every platform process."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import yaml

from recsys.config import Settings
from recsys.infra.prometheus import RULES_DIR, scrape_config

pytestmark = pytest.mark.integration


def _get(settings: Settings, path: str) -> Any:
    response = httpx.get(f"{settings.prometheus.url}{path}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_prometheus_loads_the_rules_and_scrapes(infra: Settings) -> None:
    expected = {
        group["name"]
        for path in RULES_DIR.glob("*.rules.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
    }
    groups = {g["name"]: g for g in _get(infra, "/api/v1/rules")["groups"]}
    assert set(groups) == expected
    # Let every rule be evaluated once, then none may have failed (a bad expression would).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        groups = {g["name"]: g for g in _get(infra, "/api/v1/rules")["groups"]}
        rules = [r for g in groups.values() for r in g["rules"]]
        if all(r.get("lastEvaluation", "").startswith("20") for r in rules):
            break
        time.sleep(1)
    assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
    up = _get(infra, "/api/v1/query?query=up%7Bjob%3D%22prometheus%22%7D")["result"]
    assert up
    assert up[0]["value"][1] == "1"
    targets = _get(infra, "/api/v1/targets")["activeTargets"]
    jobs = {t["labels"]["job"] for t in targets}
    assert jobs == {c["job_name"] for c in scrape_config(infra)["scrape_configs"]}
    assert {"recsys-api", "recsys-ingest", "recsys-features", "recsys-ranker"} <= jobs
