"""Point-in-time training sets on the scripted days: labels, and no value from after a label's
instant in its row."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from recsys.features import FEATURES
from recsys_pipelines.contracts import TRAINING_EXAMPLES
from recsys_pipelines.daily import DailyContext, backfill
from recsys_pipelines.errors import PipelineError
from recsys_pipelines.realtime_asof import REALTIME_FEATURES
from recsys_pipelines.tables import read_table
from recsys_pipelines.training import build_training_set, write_training_set
from tests.unit.pipelines.scenario import D1, D, catalog, day_d1_events, day_d_events
from tests.unit.pipelines.scripted import ScriptedLake, at, event

FEATURE_COLUMNS = TRAINING_EXAMPLES.columns[10:]


def _d1_impression_events() -> list[dict[str, Any]]:
    """On D+1 u1 is shown [t4, t2] at 08:00 and watches t4 to the end, then rates it 4."""
    return [
        event(
            "impression",
            "u1",
            at("2026-11-21 08:00"),
            event_id="imp-2",
            title_ids=["t4", "t2"],
            row="because_you_watched",
            position=1,
            request_id="req-9",
        ),
        event("play", "u1", at("2026-11-21 08:05"), "t4", position_sec=0.0),
        event(
            "complete",
            "u1",
            at("2026-11-21 08:45"),
            "t4",
            position_sec=2400.0,
            watched_sec=2400.0,
        ),
        event("rate", "u1", at("2026-11-21 08:46"), "t4", rating=4),
    ]


def _lake(root: Path) -> ScriptedLake:
    lake = ScriptedLake.create(root)
    catalog(lake)
    lake.events(*day_d_events())
    lake.events(*day_d1_events(), *_d1_impression_events())
    return lake


def _snapshots(lake: ScriptedLake, first: date, last: date) -> None:
    from recsys.config import Settings

    settings = Settings().model_copy(update={"lake": lake.lake})
    backfill(DailyContext(settings, lake.settings, lake.catalog, None), first, last)


def _build(lake: ScriptedLake, **kwargs: Any) -> list[dict[str, Any]]:
    rows, _ = build_training_set(lake.catalog, lake.lake, lake.settings, D, D1, **kwargs)
    return [dict(r) for r in rows.to_pylist()]


@pytest.fixture
def lake(tmp_path: Path) -> ScriptedLake:
    lake = _lake(tmp_path)
    _snapshots(lake, D - timedelta(days=1), D)
    return lake


def test_impression_labels(lake: ScriptedLake) -> None:
    rows = [r for r in _build(lake) if r["source"] == "impression"]
    got = [
        (r["label_date"], r["title_id"], r["played"], r["completed"], r["rated_high"]) for r in rows
    ]
    assert got == [
        (D, "t1", True, True, True),  # played 20:00, completed, rated 5
        (D, "t2", True, False, False),  # played on mobile, skipped
        (D, "t3", False, False, False),
        (D1, "t4", True, True, True),  # rated 4
        (D1, "t2", False, False, False),
    ]
    assert rows[0]["example_id"] == "imp-1:0"
    assert {r["features_date"] for r in rows[:3]} == {D - timedelta(days=1)}


def test_members_without_impressions_get_playback_positives_and_sampled_negatives(
    lake: ScriptedLake,
) -> None:
    rows = _build(lake, negatives=2)
    u2 = [(r["source"], r["title_id"], r["played"]) for r in rows if r["user_id"] == "u2"]
    positives = [(s, t) for s, t, p in u2 if s == "playback"]
    negatives = [t for s, t, p in u2 if s == "sampled_negative"]
    assert positives == [("playback", "t5"), ("playback", "t2")]
    assert len(negatives) == 4  # two per positive
    assert set(negatives) <= {"t1", "t3", "t4"}  # never a title u2 played
    assert all(not p for s, t, p in u2 if s == "sampled_negative")
    assert _build(lake, negatives=2) == rows  # seeded: the same set again


def test_features_are_those_known_at_the_label_instant(lake: ScriptedLake) -> None:
    rows = {r["example_id"]: r for r in _build(lake)}
    shown_d = rows["imp-1:0"]  # D 19:59: one search a minute before, on tv
    assert shown_d["search_terms_last_5min"] == ["drama"]
    assert shown_d["current_device_type"] == "tv"
    assert shown_d["recently_watched_title_ids"] == []
    assert shown_d["watch_hours_30d"] == 0.0  # the snapshot of D-1: nothing yet
    shown_d1 = rows["imp-2:0"]  # D+1 08:00
    assert round(shown_d1["watch_hours_30d"], 4) == 1.3  # D's snapshot, not D+1's (t4 after)
    assert shown_d1["recently_watched_title_ids"] == ["t2", "t1"]
    assert shown_d1["search_terms_last_5min"] == []  # the search of D expired (5 min TTL)
    assert shown_d1["current_device_type"] == "tv"  # 21:11 on D, inside its 1 day TTL
    assert shown_d1["title_completion_rate_90d"] == 1.0  # t4 as of D: u3 completed it
    u2_late = next(r for r in rows.values() if r["source"] == "playback" and r["title_id"] == "t2")
    assert u2_late["recently_watched_title_ids"] == ["t5"]
    assert u2_late["content_completion_rate_today"] == 1.0  # t5 played and completed at 12:xx
    assert u2_late["current_genre_last_30min"] == ""  # 12:30 is more than 30 min before 23:50


def _features(rows: list[dict[str, Any]], until: datetime | None = None) -> dict[str, Any]:
    """Feature values by example, of the examples labelled at or before ``until``."""
    return {
        r["example_id"]: tuple(r[c] for c in FEATURE_COLUMNS)
        for r in rows
        if until is None or r["label_time"] <= until
    }


def test_no_value_from_after_a_label_reaches_its_row(lake: ScriptedLake) -> None:
    # Events 1 µs after a label's instant (and days later) may change only the rows labelled
    # after them; every later snapshot is recomputed too. Checked at two instants.
    for cutoff, added in (
        (
            at("2026-11-21 08:00"),  # the D+1 impression
            [
                event("play", "u1", at("2026-11-21 08:00:00.000001"), "t5", position_sec=0.0),
                event("search", "u3", at("2026-11-21 08:00:00.000001"), device="web", query="x"),
                event("play", "u2", at("2026-11-24 10:00"), "t1", country="GB", position_sec=0.0),
            ],
        ),
        (
            at("2026-11-20 19:59"),  # the D impression
            [
                event("search", "u1", at("2026-11-20 19:59:00.000001"), query="after it"),
                event("play", "u1", at("2026-11-20 19:59:00.000001"), "t3", position_sec=0.0),
                event("play", "u2", at("2026-11-20 19:59:00.000001"), "t1", country="GB"),
                event("play", "u3", at("2026-11-20 19:59:00.000001"), "t2", device="web"),
            ],
        ),
    ):
        before = _features(_build(lake), cutoff)
        lake.events(*added)
        _snapshots(lake, D - timedelta(days=1), date(2026, 11, 25))
        after = _features(_build(lake), cutoff)
        # A play within a label's horizon may change which negatives are drawn for it (that
        # play is the label); the observed examples stay, and no shared example changes.
        observed = {k for k in before if not k.startswith("sampled_negative:")}
        assert len(observed) >= 6
        assert observed <= set(after)
        assert {k: after[k] for k in before.keys() & after.keys()} == {
            k: before[k] for k in before.keys() & after.keys()
        }


def test_the_check_would_see_an_event_just_before_a_label(lake: ScriptedLake) -> None:
    # The same comparison catches a change when the event is 1 µs *before* the instant.
    before = _features(_build(lake))
    lake.events(event("search", "u1", at("2026-11-20 19:58:59.999999"), query="just before"))
    _snapshots(lake, D - timedelta(days=1), D)
    after = _features(_build(lake))
    index = FEATURE_COLUMNS.index("search_terms_last_5min")
    assert after["imp-1:0"][index] == ["just before", "drama"]
    assert after != before


def test_a_missing_snapshot_is_a_one_line_error(tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    from recsys_pipelines.silver import run_silver

    run_silver(lake.catalog, lake.lake, lake.settings)
    with pytest.raises(PipelineError, match=r"features_user_daily does not exist: run `recsys pip"):
        _build(lake)
    _snapshots(lake, D - timedelta(days=1), D - timedelta(days=1))
    with pytest.raises(PipelineError, match=r"^no daily feature snapshot for 2026-11-20: run `rec"):
        _build(lake)


def test_labels_whose_horizon_has_not_ended_are_refused(lake: ScriptedLake) -> None:
    from recsys_pipelines.dates import today_utc

    yesterday = today_utc() - timedelta(days=1)
    with pytest.raises(PipelineError, match=r"has not ended yet"):
        build_training_set(lake.catalog, lake.lake, lake.settings, yesterday, yesterday)


def test_written_set_has_the_contract_and_registry_names(lake: ScriptedLake) -> None:
    rows, report = build_training_set(lake.catalog, lake.lake, lake.settings, D, D1)
    write_training_set(lake.catalog, lake.lake, rows, report, seed=0)
    stored = read_table(lake.catalog, lake.lake, TRAINING_EXAMPLES)
    assert stored.num_rows == report.rows == rows.num_rows
    assert set(FEATURE_COLUMNS) == {
        f.name for f in FEATURES.values() if f.entity.value != "country"
    }
    assert {f.name for f in REALTIME_FEATURES} <= set(FEATURE_COLUMNS)
    assert report.by_source["impression"] == 5


def test_unplayed_impressions_can_be_downsampled(lake: ScriptedLake) -> None:
    rows, _ = build_training_set(
        lake.catalog, lake.lake, lake.settings, D, D1, unplayed_share=0.0001
    )
    shown = [(r["title_id"], r["played"]) for r in rows.to_pylist() if r["source"] == "impression"]
    assert shown == [("t1", True), ("t2", True), ("t4", True)]  # every played one is kept
    with pytest.raises(PipelineError, match="unplayed share must be in"):
        build_training_set(lake.catalog, lake.lake, lake.settings, D, D1, unplayed_share=0.0)
