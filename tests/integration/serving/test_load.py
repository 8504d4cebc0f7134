"""`make load`'s Locust run (load/locust.conf, load/locustfile.py) against the real system:
members get recommendations and send plays and ratings through ingest, the reports are
written, and the SLO gate passes or fails the run by its exit code. Locust runs as its own
process, as `make load` runs it (gevent patches the standard library of whatever imports it)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from recsys.config import repo_root
from tests.integration.serving.api_system import ApiSystem

pytestmark = pytest.mark.integration

ROOT = repo_root()
LOCUST = Path(sys.executable).parent / "locust"


def _locust(system: ApiSystem, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [
            str(LOCUST),
            "--config",
            "load/locust.conf",
            "--host",
            system.api_url,
            "--ingest-host",
            f"http://{system.services['ingest'].address}",
            "--known-members",
            "200",
            "--csv",
            str(out / "recsys"),
            "--html",
            str(out / "report.html"),
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _stats(out: Path) -> dict[str, dict[str, str]]:
    with (out / "recsys_stats.csv").open() as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def test_members_use_the_system_and_the_gate_passes(
    api_platform: ApiSystem, tmp_path: Path
) -> None:
    run = _locust(
        api_platform,
        tmp_path,
        *("--users", "10", "--spawn-rate", "10", "--run-time", "20s"),
        # A loose gate: this test is about the run, not this busy machine's latency.
        *("--slo-p99-ms", "5000", "--slo-max-failure-ratio", "0.05"),
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "SLO gate: PASSED" in run.stdout
    stats = _stats(tmp_path)
    recommendations = stats["/v1/recommendations/[member]"]
    assert int(recommendations["Request Count"]) >= 10
    assert int(recommendations["Failure Count"]) == 0
    plays = stats["/v1/events (play)"]
    assert int(plays["Request Count"]) >= 1
    assert int(plays["Failure Count"]) == 0  # every play was accepted by ingest
    assert (tmp_path / "report.html").stat().st_size > 10_000


def test_a_missed_objective_fails_the_run(api_platform: ApiSystem, tmp_path: Path) -> None:
    run = _locust(
        api_platform,
        tmp_path,
        *("--users", "3", "--spawn-rate", "3", "--run-time", "6s"),
        *("--slo-p99-ms", "0.5"),
    )
    assert run.returncode == 1, run.stdout[-3000:]
    assert "MISSED p99 of GET /v1/recommendations" in run.stdout
    assert "SLO gate: FAILED" in run.stdout


def test_options_that_make_no_sense_are_refused(api_platform: ApiSystem, tmp_path: Path) -> None:
    run = _locust(api_platform, tmp_path, "--run-time", "5s", "--new-share", "1.5")
    assert run.returncode != 0
    assert "--new-share must be between 0 and 1" in run.stdout + run.stderr
