"""Bronze -> silver on a scripted day: the rows, and incremental, idempotent, crash-safe runs."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog.sql import SqlCatalog

from recsys_pipelines import silver
from recsys_pipelines.contracts import (
    SILVER_IMPRESSIONS,
    SILVER_PLAYBACK,
    SILVER_RATINGS,
    SILVER_SEARCHES,
    SILVER_SESSIONS,
    SILVER_TABLES,
    TableContract,
)
from recsys_pipelines.errors import PipelineError
from recsys_pipelines.silver import WATERMARK, run_silver
from recsys_pipelines.tables import load_existing, read_table, summary_property
from tests.unit.pipelines.scenario import D1, D, catalog, day_d1_events, day_d_events
from tests.unit.pipelines.scripted import ScriptedLake, at, event


@pytest.fixture
def lake(tmp_path: Path) -> ScriptedLake:
    lake = ScriptedLake.create(tmp_path)
    catalog(lake)
    lake.events(*day_d_events())
    return lake


def _run(lake: ScriptedLake, **kwargs: Any) -> silver.SilverReport:
    return run_silver(lake.catalog, lake.lake, lake.settings, **kwargs)


def _rows(lake: ScriptedLake, contract: TableContract, *sort: str) -> list[dict[str, Any]]:
    rows = read_table(lake.catalog, lake.lake, contract).to_pylist()
    return sorted(rows, key=lambda r: tuple(r[k] for k in sort))


def _snapshot_ids(lake: ScriptedLake) -> dict[str, int | None]:
    ids: dict[str, int | None] = {}
    for contract in SILVER_TABLES:
        snap = load_existing(lake.catalog, lake.lake, contract.name).current_snapshot()
        ids[contract.name] = snap.snapshot_id if snap else None
    return ids


def test_sessions_of_the_scripted_day(lake: ScriptedLake) -> None:
    _run(lake)
    rows = _rows(lake, SILVER_SESSIONS, "session_id")
    got = [
        (
            r["session_id"],
            r["event_date"],
            r["duration_sec"],
            r["events"],
            r["plays"],
            r["titles_played"],
            r["seconds_watched"],
            r["country"],
        )
        for r in rows
    ]
    assert got == [
        ("u1:mobile:1795207200000", D, 600, 2, 1, 1, 600.0, "US"),
        ("u1:tv:1795204680000", D, 4380, 7, 2, 1, 4080.0, "US"),  # the resend counted once
        ("u2:tv:1795176000000", D, 1800, 2, 1, 1, 1800.0, "GB"),
        ("u2:tv:1795218600000", D, 2100, 3, 1, 1, 1810.0, "GB"),  # crosses midnight
        ("u3:web:1795168800000", D, 2460, 3, 1, 1, 2400.0, "US"),
        ("u3:web:1795174200000", D, 600, 2, 1, 1, 600.0, "US"),
    ]
    assert rows[1]["started_at"] == at("2026-11-20 19:58")
    assert rows[1]["ended_at"] == at("2026-11-20 21:11")


def test_playback_merges_the_segments_of_a_title_in_a_session(lake: ScriptedLake) -> None:
    _run(lake)
    got = [
        (
            r["user_id"],
            r["title_id"],
            r["device"],
            r["event_date"],
            r["plays"],
            r["seconds_watched"],
            r["runtime_sec"],
            round(r["watch_share"], 4),
            r["completed"],
        )
        for r in _rows(lake, SILVER_PLAYBACK, "user_id", "first_event_at")
    ]
    assert got == [
        ("u1", "t1", "tv", D, 2, 4080.0, 4200, 0.9714, True),
        ("u1", "t2", "mobile", D, 1, 600.0, 6000, 0.1, False),
        ("u2", "t5", "tv", D, 1, 1800.0, 1800, 1.0, True),
        ("u2", "t2", "tv", D, 1, 1800.0, 6000, 0.3, False),  # the t3 preview is not a playback
        ("u3", "t4", "web", D, 1, 2400.0, 2400, 1.0, True),
        ("u3", "t1", "web", D, 1, 600.0, 4200, 0.1429, False),
    ]


def test_ratings_impressions_and_searches(lake: ScriptedLake) -> None:
    _run(lake)
    ratings = [
        (r["user_id"], r["title_id"], r["rating"]) for r in _rows(lake, SILVER_RATINGS, "user_id")
    ]
    assert ratings == [("u1", "t1", 5), ("u3", "t4", 3)]
    impressions = _rows(lake, SILVER_IMPRESSIONS, "rank")
    assert [(r["title_id"], r["rank"], r["row_name"], r["row_position"]) for r in impressions] == [
        ("t1", 0, "top_picks", 0),
        ("t2", 1, "top_picks", 0),
        ("t3", 2, "top_picks", 0),
    ]
    assert {r["session_id"] for r in impressions} == {"u1:tv:1795204680000"}
    assert impressions[0]["request_id"] is None  # empty in the event: none
    searches = _rows(lake, SILVER_SEARCHES, "event_id")
    assert [(r["user_id"], r["query"]) for r in searches] == [("u1", "drama")]


def test_a_second_run_changes_nothing(lake: ScriptedLake) -> None:
    first = _run(lake)
    assert first.changed
    before = _snapshot_ids(lake)
    second = _run(lake)
    assert not second.changed
    assert _snapshot_ids(lake) == before


def test_a_run_recomputes_only_the_days_of_new_bronze_snapshots(lake: ScriptedLake) -> None:
    _run(lake)
    files_of_d = _files_of(lake, D)
    assert files_of_d
    later = D + timedelta(days=10)
    lake.events(event("play", "u9", at(f"{later} 12:00"), "t1", position_sec=0.0))
    report = _run(lake)
    assert {t.table: t.days for t in report.tables} == {
        c.name: [later - timedelta(days=1), later] for c in SILVER_TABLES
    }
    assert all(t.snapshots == 1 for t in report.tables)
    sessions = _rows(lake, SILVER_SESSIONS, "session_id")
    assert len(sessions) == 7
    assert sessions[-1]["user_id"] == "u9"
    # The old day was not rewritten: its partition holds the same data files as before.
    assert _files_of(lake, D) == files_of_d
    table = load_existing(lake.catalog, lake.lake, SILVER_SESSIONS.name)
    bronze_head = load_existing(lake.catalog, lake.lake, "bronze_events").current_snapshot()
    assert bronze_head is not None
    assert summary_property(table, WATERMARK) == str(bronze_head.snapshot_id)


def _files_of(lake: ScriptedLake, day: date) -> set[str]:
    table = load_existing(lake.catalog, lake.lake, SILVER_SESSIONS.name)
    scan = table.scan(row_filter=f"event_date = '{day.isoformat()}'")
    return {task.file.file_path for task in scan.plan_files()}


def test_a_late_event_recomputes_its_day(lake: ScriptedLake) -> None:
    _run(lake)
    lake.events(*day_d1_events())  # D+1 rows: D and D+1 are recomputed
    # and a late event of D itself: u2 rates t2 on D, arriving after the first run
    lake.events(event("rate", "u2", at("2026-11-20 23:55"), "t2", country="GB", rating=4))
    report = _run(lake)
    assert report.tables[0].snapshots == 2
    ratings = [(r["user_id"], r["event_date"]) for r in _rows(lake, SILVER_RATINGS, "user_id")]
    assert ratings == [("u1", D), ("u2", D), ("u3", D)]
    playback = _rows(lake, SILVER_PLAYBACK, "event_date", "user_id", "first_event_at")
    assert [(r["user_id"], r["title_id"], r["event_date"]) for r in playback][-1] == (
        "u3",
        "t1",
        D1,
    )


def test_a_full_rebuild_gives_the_same_rows_as_incremental_runs(
    tmp_path: Path, lake: ScriptedLake
) -> None:
    _run(lake)
    lake.events(*day_d1_events())
    _run(lake)
    incremental = {c.name: _rows(lake, c, *c.columns[:3]) for c in SILVER_TABLES}
    _run(lake, full=True)
    assert {c.name: _rows(lake, c, *c.columns[:3]) for c in SILVER_TABLES} == incremental


class _Crash(Exception):
    pass


def _crash_on_commit(monkeypatch: pytest.MonkeyPatch, n: int) -> list[int]:
    """Make the n-th catalog commit (1-based) of silver tables die, as a killed process would:
    the data files are written, the catalog pointer is not swapped."""
    calls = [0]
    original = SqlCatalog.commit_table

    def commit(self: SqlCatalog, table: Any, requirements: Any, updates: Any) -> Any:
        if table.name()[-1].startswith("silver_"):
            calls[0] += 1
            if calls[0] == n:
                raise _Crash(f"killed during commit {n}")
        return original(self, table, requirements, updates)

    monkeypatch.setattr(SqlCatalog, "commit_table", commit)
    return calls


def test_a_crash_mid_run_leaves_no_partial_commit(
    lake: ScriptedLake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Several chunks of days, so a run makes several commits per table; die in the middle.
    monkeypatch.setattr(silver, "CHUNK_DAYS", 1)
    lake.events(*day_d1_events())
    _crash_on_commit(monkeypatch, 4)
    with pytest.raises(_Crash):
        _run(lake)
    monkeypatch.undo()
    monkeypatch.setattr(silver, "CHUNK_DAYS", 1)
    # Whatever committed carries no watermark yet (only a run's last chunk does): nothing is
    # marked processed, so the next run redoes every day.
    for contract in SILVER_TABLES:
        table = load_existing(lake.catalog, lake.lake, contract.name)
        assert summary_property(table, WATERMARK) is None
    report = _run(lake)
    assert all(t.committed for t in report.tables)
    clean = ScriptedLake.create(tmp_path / "clean")
    catalog(clean)
    clean.events(*day_d_events())
    clean.events(*day_d1_events())
    run_silver(clean.catalog, clean.lake, clean.settings)
    for contract in SILVER_TABLES:
        keys = contract.columns[:3]
        assert _rows(lake, contract, *keys) == _rows(clean, contract, *keys), contract.name


def test_a_crash_between_tables_finishes_on_the_next_run(
    lake: ScriptedLake, monkeypatch: pytest.MonkeyPatch
) -> None:
    _crash_on_commit(monkeypatch, 3)  # sessions and playback commit, ratings dies
    with pytest.raises(_Crash):
        _run(lake)
    monkeypatch.undo()
    report = _run(lake)
    committed = {t.table for t in report.tables if t.committed}
    assert committed == {SILVER_RATINGS.name, SILVER_IMPRESSIONS.name, SILVER_SEARCHES.name}
    assert len(_rows(lake, SILVER_RATINGS, "user_id")) == 2
    assert not _run(lake).changed


def test_missing_bronze_is_a_one_line_error(tmp_path: Path) -> None:
    empty = ScriptedLake.create(tmp_path)
    catalog(empty)
    with pytest.raises(
        PipelineError, match=r"recsys\.bronze_events does not exist: start the bronze"
    ):
        _run(empty)


def test_missing_titles_is_a_one_line_error(tmp_path: Path) -> None:
    bare = ScriptedLake.create(tmp_path)
    bare.events(*day_d_events())
    with pytest.raises(
        PipelineError, match=r"dim_titles does not exist: run `recsys world generate`"
    ):
        _run(bare)


def test_an_empty_bronze_snapshot_only_moves_the_watermark(lake: ScriptedLake) -> None:
    _run(lake)
    lake.events()  # a micro-commit with no rows (offsets moved past rejects)
    report = _run(lake)
    assert all(t.committed and t.rows == 0 and t.days == [] for t in report.tables)
    assert len(_rows(lake, SILVER_SESSIONS, "session_id")) == 6
    assert not _run(lake).changed


def test_days_are_utc_dates(lake: ScriptedLake) -> None:
    _run(lake)
    assert {r["event_date"] for r in _rows(lake, SILVER_PLAYBACK, "user_id")} == {D}
    assert date(2026, 11, 20) == D
