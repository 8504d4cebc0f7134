"""The Grafana dashboards (tools/dashboards.py, grafana-foundation-sdk): the committed JSON is
what the code builds (a stale or stray file is caught), every query parses as PromQL (a broken
one is caught), and every dashboard can be pointed at any Prometheus data source. That every
metric they name exists is tested against the running system (tests/integration/serving)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recsys.config import repo_root
from tests.promql_names import DASHBOARDS_DIR, dashboard_expressions, metric_names, unknown_names

ROOT = repo_root()
GENERATOR = ROOT / "tools" / "dashboards.py"


def _check(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_committed_dashboards_are_what_the_code_builds() -> None:
    checked = _check(DASHBOARDS_DIR)
    assert checked.returncode == 0, checked.stderr
    assert {p.stem for p in DASHBOARDS_DIR.glob("*.json")} == {
        "overview",
        "serving",
        "stream",
        "experiments",
    }


def test_a_stale_or_stray_dashboard_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "dashboards"
    shutil.copytree(DASHBOARDS_DIR, copy)
    edited = copy / "overview.json"
    edited.write_text(edited.read_text().replace("Recsys / Overview", "Recsys / Overveiw"))
    checked = _check(copy)
    assert checked.returncode == 1
    assert "overview.json" in checked.stderr
    assert "make dashboards" in checked.stderr

    shutil.copy(DASHBOARDS_DIR / "overview.json", edited)
    (copy / "old.json").write_text("{}")
    checked = _check(copy)
    assert checked.returncode == 1
    assert "old.json" in checked.stderr


def test_every_query_parses_and_reads_platform_metrics() -> None:
    expressions = dashboard_expressions()
    assert len(expressions) > 30
    for key, expr in expressions.items():
        names = metric_names(expr)  # raises on a query Prometheus would refuse
        assert names, f"{key} reads no metric"
        assert all(n.startswith(("recsys", "slo:", "up")) for n in names), (key, names)


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        ("sum(rate(recsys_api_requests_total[1m])", "unclosed left parenthesis"),
        ("rate(recsys_api_requests_total)", "expected type matrix"),
        ("recsys_api_requests_total{status=~}", "invalid promql"),
    ],
)
def test_a_query_that_does_not_parse_is_caught(broken: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        metric_names(broken)


def test_a_misspelt_metric_is_reported() -> None:
    known = {"recsys_api_requests_total"}
    assert unknown_names({"ok": "sum(rate(recsys_api_requests_total[1m]))"}, known) == {}
    misspelt = {"typo": "sum(rate(recsys_api_requets_total[1m]))"}
    assert unknown_names(misspelt, known) == {"typo": {"recsys_api_requets_total"}}


def test_every_dashboard_is_portable_and_well_formed() -> None:
    for path in DASHBOARDS_DIR.glob("*.json"):
        dashboard = json.loads(path.read_text())
        variables = dashboard["templating"]["list"]
        assert [v["name"] for v in variables if v["type"] == "datasource"] == ["datasource"]
        panels = dashboard["panels"]
        ids = [p["id"] for p in panels]
        assert len(set(ids)) == len(ids), f"{path.name}: panel ids repeat"
        assert dashboard["uid"] == f"recsys-{path.stem}"
        for panel in panels:
            for target in panel.get("targets", []):
                assert target["datasource"]["uid"] == "${datasource}", (path.name, panel["title"])
