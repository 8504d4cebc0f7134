"""The daily batch features of the scripted day, against values computed by hand."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from recsys.catalog import GENRES
from recsys.features import FEATURES
from recsys_pipelines.features_daily import TITLE_FEATURES, USER_FEATURES, compute_features
from recsys_pipelines.silver import run_silver
from tests.unit.pipelines.scenario import D, catalog, day_d_events
from tests.unit.pipelines.scripted import ScriptedLake


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> ScriptedLake:
    lake = ScriptedLake.create(tmp_path_factory.mktemp("features"))
    catalog(lake)
    lake.events(*day_d_events())
    run_silver(lake.catalog, lake.lake, lake.settings)
    return lake


def _vector(**shares: float) -> list[float]:
    return [shares.get(g, 0.0) for g in GENRES]


def _approx(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (round(v, 4) if isinstance(v, float) else [round(x, 4) for x in v])
        if isinstance(v, float) or (isinstance(v, list) and v and isinstance(v[0], float))
        else v
        for k, v in row.items()
    }


def test_user_features_of_the_scripted_day(lake: ScriptedLake) -> None:
    users, _ = compute_features(lake.catalog, lake.lake, lake.settings, D)
    rows = {r["user_id"]: _approx(r) for r in users.to_pylist()}
    assert rows["u1"] == {
        "feature_date": D,
        "user_id": "u1",
        "genre_affinity_vector": _vector(drama=0.8718, comedy=0.1282),
        "content_completion_rate_p50": 0.55,  # median of 1.0 (t1 completed) and 0.1 (t2)
        "avg_session_duration_min": 41.5,  # 4380 s and 600 s
        "preferred_time_of_day": 15,  # 20:00 and 20:40 UTC are 15 h in the US (UTC-5)
        "language_preferences": ["en", "es"],
        "country": "US",
        "subscription_tier": "premium",
        "watch_hours_30d": 1.3,
        "watch_hours_90d": 1.3,
        "watch_hours_365d": 1.3,
        "top_directors_30d": ["Ann", "Bo"],
    }
    u2 = rows["u2"]
    assert u2["genre_affinity_vector"] == _vector(comedy=1.0)  # t2's primary genre is comedy
    assert u2["preferred_time_of_day"] == 12  # 1800 s at 12 h and at 23 h GB: the earlier
    assert u2["language_preferences"] == ["es", "fr"]  # tie on seconds, by name
    assert u2["top_directors_30d"] == ["Bo"]  # t5 has no director
    assert (u2["content_completion_rate_p50"], u2["avg_session_duration_min"]) == (0.65, 32.5)
    assert (u2["country"], u2["subscription_tier"]) == ("GB", "basic")
    u3 = rows["u3"]
    assert u3["genre_affinity_vector"] == _vector(horror=0.8, drama=0.2)
    assert (u3["preferred_time_of_day"], u3["watch_hours_30d"]) == (5, 0.8333)
    assert u3["content_completion_rate_p50"] == 0.5714


def test_windows_end_on_the_feature_date(lake: ScriptedLake) -> None:
    # The day before D nothing had happened; 40 days later D is outside the 30-day windows
    # but inside the 90- and 365-day ones.
    before, _ = compute_features(lake.catalog, lake.lake, lake.settings, D - timedelta(days=1))
    assert before.num_rows == 0
    later, _ = compute_features(lake.catalog, lake.lake, lake.settings, D + timedelta(days=40))
    u1 = next(r for r in later.to_pylist() if r["user_id"] == "u1")
    assert u1["watch_hours_30d"] == 0.0
    assert round(u1["watch_hours_90d"], 4) == 1.3
    assert u1["genre_affinity_vector"] == list(FEATURES["genre_affinity_vector"].default)
    assert u1["preferred_time_of_day"] == FEATURES["preferred_time_of_day"].default
    assert u1["top_directors_30d"] == []
    assert u1["language_preferences"] == ["en", "es"]  # a 90-day feature


def test_title_features_of_the_scripted_day(lake: ScriptedLake) -> None:
    _, titles = compute_features(lake.catalog, lake.lake, lake.settings, D)
    rows = {r["title_id"]: _approx(r) for r in titles.to_pylist()}
    assert set(rows) == {"t1", "t2", "t3", "t4", "t5"}
    assert rows["t1"] == {
        "feature_date": D,
        "title_id": "t1",
        "title_genres": ["drama"],
        "release_age_days": 80,  # 2026-09-01 .. 2026-11-20
        "title_popularity_30d": 0.4149,  # 4680 of 11280 s
        "title_completion_rate_90d": 0.5,  # u1 completed, u3 did not
        "available_countries": ["GB", "US"],
    }
    assert rows["t2"]["title_completion_rate_90d"] == 0.0
    assert rows["t3"]["title_popularity_30d"] == 0.0  # only previewed
    assert rows["t3"]["title_completion_rate_90d"] == 0.0  # no viewers: the registry default
    assert rows["t4"]["release_age_days"] == 19


def test_every_registry_batch_feature_is_a_column() -> None:
    from recsys_pipelines.contracts import FEATURES_TITLE_DAILY, FEATURES_USER_DAILY

    assert [f.name for f in USER_FEATURES] == FEATURES_USER_DAILY.columns[2:]
    assert [f.name for f in TITLE_FEATURES] == FEATURES_TITLE_DAILY.columns[2:]


def test_empty_snapshot_on_a_lake_with_no_events(tmp_path: Path) -> None:
    bare = ScriptedLake.create(tmp_path)
    catalog(bare)
    bare.events()
    run_silver(bare.catalog, bare.lake, bare.settings)
    users, titles = compute_features(bare.catalog, bare.lake, bare.settings, D)
    assert users.num_rows == 0
    assert titles.num_rows == 5


def test_a_title_without_genres_gets_the_default(tmp_path: Path) -> None:
    from tests.unit.pipelines.scripted import at, event, member, title

    lake = ScriptedLake.create(tmp_path)
    lake.titles(title("t1"), title("t9", genres=[]))
    lake.members(member("u1"))
    lake.events(
        event("play", "u1", at("2026-11-20 10:00"), "t9", position_sec=0.0),
        event("pause", "u1", at("2026-11-20 10:10"), "t9", position_sec=600.0, watched_sec=600.0),
    )
    run_silver(lake.catalog, lake.lake, lake.settings)
    users, titles = compute_features(lake.catalog, lake.lake, lake.settings, D)
    assert users.column("genre_affinity_vector").to_pylist() == [[0.0] * len(GENRES)]
    assert users.column("watch_hours_30d").to_pylist() == [600 / 3600]
    t9 = next(r for r in titles.to_pylist() if r["title_id"] == "t9")
    assert t9["title_genres"] == []
