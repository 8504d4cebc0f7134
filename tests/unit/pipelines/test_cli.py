"""`recsys pipeline` and `recsys analytics` on a scripted lake: output and one-line errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsys.cli.main import build_app
from recsys_pipelines.dates import today_utc
from tests.unit.pipelines.scenario import catalog, day_d_events
from tests.unit.pipelines.scripted import ScriptedLake
from tests.unit.test_cli import HEAVY, _imported_by


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"RECSYS_LAKE__WAREHOUSE": str(tmp_path / "lake"), "COLUMNS": "200"}


def _invoke(env: dict[str, str], *argv: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), list(argv), env=env)
    return result.exit_code, result.output


def test_silver_then_analytics_prints_a_table(tmp_path: Path, env: dict[str, str]) -> None:
    lake = ScriptedLake.create(tmp_path)
    catalog(lake)
    lake.events(*day_d_events())
    code, out = _invoke(env, "pipeline", "run", "silver")
    assert code == 0, out
    assert "silver_playback      6 rows over 2 day(s)" in out
    code, out = _invoke(env, "analytics", "top-titles", "--as-of", "2026-11-20", "--country", "us")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("Top 10 titles per country by hours viewed")
    assert lines[1].split() == [
        "country",
        "rank",
        "title_id",
        "title_name",
        "hours_viewed",
        "viewers",
    ]
    assert lines[3].split() == ["US", "1", "t1", "T1", "1.30", "2"]
    assert len(lines) == 6
    code, out = _invoke(env, "pipeline", "run", "silver")
    assert "silver_playback      up to date" in out


def test_a_future_date_is_one_line(env: dict[str, str]) -> None:
    future = (today_utc() + timedelta(days=3)).isoformat()
    code, out = _invoke(env, "analytics", "completion-rate", "--as-of", future)
    assert code == 1
    assert (
        out.strip() == f"error: as-of date {future} is in the future (today is {today_utc()} UTC)"
    )


def test_a_missing_bronze_table_is_one_line(env: dict[str, str]) -> None:
    code, out = _invoke(env, "pipeline", "run", "silver")
    assert code == 1
    assert out.strip().startswith("error: lake table recsys.bronze_events does not exist: start")
    assert len(out.strip().splitlines()) == 1


def test_questions_lists_the_unanswerable_ones(env: dict[str, str]) -> None:
    code, out = _invoke(env, "analytics", "questions")
    assert code == 0
    assert "downgrade-genres" in out
    assert "no plan-change event" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["pipeline", "--help"],
        ["pipeline", "run", "--help"],
        ["pipeline", "run", "daily", "--help"],
        ["analytics", "--help"],
        ["analytics", "questions"],
    ],
)
def test_help_imports_nothing_heavy(tmp_path: Path, argv: list[str]) -> None:
    # The command groups load on every `recsys` call: DuckDB, pyiceberg, pyarrow, the Cassandra
    # driver and pyspark are imported inside the commands that use them.
    imported = _imported_by(tmp_path, *argv)
    assert imported & (HEAVY | {"duckdb", "pyspark"}) == set()


def test_cassandra_down_is_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    from tests.unit.test_cli import _free_port

    refused = {**env, "RECSYS_CASSANDRA__PORT": str(_free_port())}
    code, out = _invoke(refused, "pipeline", "run", "daily", "--date", "2026-11-20")
    assert code == 1
    assert out.strip().startswith("error: Cassandra: ")
    assert len(out.strip().splitlines()) == 1


def test_a_daily_run_of_a_day_not_ended_is_one_line(env: dict[str, str]) -> None:
    today = today_utc()
    code, out = _invoke(env, "pipeline", "run", "daily", "--no-cassandra", "--date", str(today))
    assert code == 1
    assert out.strip() == (
        f"error: day {today} has not ended yet (UTC); the latest day to run is "
        f"{today - timedelta(days=1)}"
    )
    future = today + timedelta(days=2)
    code, out = _invoke(env, "pipeline", "backfill", str(today), str(future), "--no-cassandra")
    assert code == 1
    assert out.strip().startswith(f"error: day {future} is in the future (UTC)")
