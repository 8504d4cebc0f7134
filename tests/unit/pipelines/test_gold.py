"""Every gold question against answers computed by hand from the scripted day (scenario.py)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from recsys_pipelines.contracts import GOLD_TOP_TITLES_7D
from recsys_pipelines.dates import today_utc
from recsys_pipelines.errors import PipelineError
from recsys_pipelines.gold import QUESTIONS, UNANSWERABLE, answer, materialize_gold
from recsys_pipelines.silver import run_silver
from recsys_pipelines.tables import read_table
from tests.unit.pipelines.scenario import D1, D, catalog, day_d1_events, day_d_events
from tests.unit.pipelines.scripted import ScriptedLake, at, event


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> ScriptedLake:
    lake = ScriptedLake.create(tmp_path_factory.mktemp("gold"))
    catalog(lake)
    lake.events(*day_d_events())
    lake.events(*day_d1_events())
    run_silver(lake.catalog, lake.lake, lake.settings)
    return lake


def _answer(lake: ScriptedLake, name: str, as_of: date, country: str | None = None) -> list[Any]:
    rows: list[Any] = answer(
        lake.catalog, lake.lake, lake.settings, name, as_of, country
    ).to_pylist()
    return rows


def test_top_titles_by_hours_over_seven_days(lake: ScriptedLake) -> None:
    got = [
        (r["country"], r["rank"], r["title_id"], round(r["hours_viewed"], 4), r["viewers"])
        for r in _answer(lake, "top-titles", D)
    ]
    assert got == [
        ("GB", 1, "t2", 0.5, 1),  # 1800 s; ties with t5, broken by title id
        ("GB", 2, "t5", 0.5, 1),
        ("US", 1, "t1", 1.3, 2),  # u1 4080 s + u3 600 s
        ("US", 2, "t4", 0.6667, 1),  # 2400 s
        ("US", 3, "t2", 0.1667, 1),  # u1's 600 s on mobile
    ]


def test_top_titles_window_moves_with_the_as_of_date(lake: ScriptedLake) -> None:
    # As of D+1, u3's 3400 s on D+1 are added to t1.
    d1 = [
        (r["title_id"], round(r["hours_viewed"], 4)) for r in _answer(lake, "top-titles", D1, "us")
    ]
    assert d1[0] == ("t1", 2.2444)
    # As of D+7 the window is D+1 .. D+7: D has left it.
    week = _answer(lake, "top-titles", D + timedelta(days=7))
    assert [(r["country"], r["title_id"], round(r["hours_viewed"], 4)) for r in week] == [
        ("US", "t1", 0.9444)
    ]
    assert week[0]["title_name"] == "T1"


def test_completion_rate_merges_sessions_and_filters_releases(lake: ScriptedLake) -> None:
    def rates(as_of: date) -> list[tuple[str, str, int, int, float]]:
        return [
            (r["country"], r["title_id"], r["viewers"], r["completions"], r["completion_rate"])
            for r in _answer(lake, "completion-rate", as_of)
        ]

    # t5 (released 2026-01-01) is older than 6 months; t3 was only previewed.
    assert rates(D) == [
        ("GB", "t2", 1, 0, 0.0),
        ("US", "t1", 2, 1, 0.5),  # u1 completed, u3 watched 600 of 4200 s
        ("US", "t2", 1, 0, 0.0),
        ("US", "t4", 1, 1, 1.0),
    ]
    # By D+1 u3's two sessions of t1 add up to 4000 of 4200 s (> 90 %), with no complete event.
    assert ("US", "t1", 2, 2, 1.0) in rates(D1)


def test_overlapping_sessions_of_the_scripted_day(lake: ScriptedLake) -> None:
    rows = _answer(lake, "overlapping-sessions", D)
    assert [
        (r["user_id"], r["device_a"], r["device_b"], r["overlap_sec"], r["b_started_at"])
        for r in rows
    ] == [("u1", "tv", "mobile", 600, at("2026-11-20 20:40"))]
    assert _answer(lake, "overlapping-sessions", D1) == []


def test_overlap_edge_cases(tmp_path: Path) -> None:
    lake = ScriptedLake.create(tmp_path)
    catalog(lake)
    day = "2026-11-22"

    def watch(user: str, device: str, start: str, end: str, seconds: float) -> list[Any]:
        return [
            event("play", user, at(f"{day} {start}"), "t1", device=device, position_sec=0.0),
            event(
                "skip",
                user,
                at(f"{day} {end}"),
                "t1",
                device=device,
                position_sec=seconds,
                watched_sec=seconds,
            ),
        ]

    lake.events(
        *watch("u7", "tv", "08:00", "08:10", 600),  # u7: the mobile session starts exactly
        *watch("u7", "mobile", "08:10", "08:20", 600),  # when the tv one ends: no overlap
        *watch("u8", "tv", "09:00", "09:30", 1800),  # u8: one session only
        *watch("u9", "tv", "10:00", "10:20", 1200),  # u9: identical sessions on two devices:
        *watch("u9", "mobile", "10:00", "10:20", 1200),  # one pair, reported once
    )
    run_silver(lake.catalog, lake.lake, lake.settings)
    rows = _answer(lake, "overlapping-sessions", date(2026, 11, 22))
    assert [(r["user_id"], r["session_a"], r["session_b"], r["overlap_sec"]) for r in rows] == [
        ("u9", "u9:mobile:1795341600000", "u9:tv:1795341600000", 1200)
    ]


def test_materialized_gold_matches_the_answers(lake: ScriptedLake) -> None:
    written = materialize_gold(lake.catalog, lake.lake, lake.settings, D)
    assert written == {
        "gold_top_titles_7d": 5,
        "gold_completion_rate": 4,
        "gold_overlapping_sessions": 1,
    }
    stored = read_table(lake.catalog, lake.lake, GOLD_TOP_TITLES_7D, D, D).sort_by(
        [("country", "ascending"), ("rank", "ascending")]
    )
    assert stored.to_pylist() == _answer(lake, "top-titles", D)
    materialize_gold(lake.catalog, lake.lake, lake.settings, D)  # again: replaced, not doubled
    assert read_table(lake.catalog, lake.lake, GOLD_TOP_TITLES_7D, D, D).num_rows == 5


def test_a_future_as_of_date_is_refused(lake: ScriptedLake) -> None:
    future = today_utc() + timedelta(days=1)
    with pytest.raises(PipelineError, match=r"as-of date .* is in the future"):
        _answer(lake, "top-titles", future)


def test_gold_before_silver_is_a_one_line_error(tmp_path: Path) -> None:
    bare = ScriptedLake.create(tmp_path)
    catalog(bare)
    with pytest.raises(
        PipelineError, match=r"silver_playback does not exist: run `recsys pipeline"
    ):
        _answer(bare, "top-titles", D)


def test_every_seed_question_is_answered_or_explained() -> None:
    assert set(QUESTIONS) == {"top-titles", "completion-rate", "overlapping-sessions"}
    assert "downgrade-genres" in UNANSWERABLE
