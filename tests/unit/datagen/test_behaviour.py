"""The behaviour model: sessions planned from a seeded RNG, checked for coherence and taste."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from recsys.catalog import GENRES
from recsys_datagen.behaviour import PlannedEvent, choose_titles, plan_session
from recsys_datagen.sim_world import SimWorld
from tests.stub_ingest import contract_problems

START_MS = 1_780_000_000_000  # 2026-05-28


def _sessions(world: SimWorld, count: int, seed: int = 1, **kw: Any) -> list[list[PlannedEvent]]:
    rng = np.random.default_rng(seed)
    members = rng.integers(0, world.member_count, count)
    return [plan_session(world, int(m), START_MS, rng, **kw) for m in members]


def test_a_seeded_rng_plans_the_same_session(sim_world: SimWorld) -> None:
    one = plan_session(sim_world, 5, START_MS, np.random.default_rng(42))
    two = plan_session(sim_world, 5, START_MS, np.random.default_rng(42))
    assert one == two


def test_sessions_open_on_the_home_page_and_run_forward(sim_world: SimWorld) -> None:
    for session in _sessions(sim_world, 200):
        first = session[0]
        assert first.at_ms == START_MS
        assert first.event["event_type"] == "impression"
        assert first.event["row"] == "top_picks"
        times = [p.at_ms for p in session]
        assert times == sorted(times)
        assert all(p.event["occurred_at"] == p.at_ms for p in session)
        assert len({p.event["user_id"] for p in session}) == 1
        assert len({p.event["device"] for p in session}) == 1


def test_every_planned_event_satisfies_the_contract(sim_world: SimWorld) -> None:
    sessions = _sessions(sim_world, 300)
    events = [p.event for s in sessions for p in s]
    assert all(not contract_problems(e, now_ms=START_MS + 86_400_000) for e in events)
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids))
    kinds = Counter(e["event_type"] for e in events)
    assert set(kinds) == {
        "impression",
        "view",
        "play",
        "pause",
        "complete",
        "rate",
        "search",
        "skip",
    }


def test_watching_is_coherent_with_runtimes(sim_world: SimWorld) -> None:
    index = {t: i for i, t in enumerate(sim_world.title_ids)}
    for session in _sessions(sim_world, 300, time_scale=1.0):
        segment_start: dict[str, int] = {}
        for planned in session:
            e = planned.event
            if e["event_type"] not in {"play", "pause", "complete", "skip"}:
                continue
            runtime = float(sim_world.runtime_sec[index[e["title_id"]]])
            if e["event_type"] == "play":
                segment_start[e["title_id"]] = planned.at_ms
                continue
            assert 0 <= e["watched_sec"] <= e["position_sec"] <= runtime
            if e["event_type"] == "complete":
                assert e["position_sec"] == runtime
            if e["event_type"] == "skip":  # an abandon or a preview: small watched_sec
                assert e["watched_sec"] <= max(30.0, 0.25 * runtime)
            if e["title_id"] in segment_start and e["event_type"] != "skip":
                # At time scale 1 the clock advances by exactly the seconds watched.
                elapsed_s = (planned.at_ms - segment_start[e["title_id"]]) / 1000
                assert elapsed_s == pytest.approx(e["watched_sec"], abs=0.2)


def test_time_scale_compresses_member_time(sim_world: SimWorld) -> None:
    real = plan_session(sim_world, 9, START_MS, np.random.default_rng(3), time_scale=1.0)
    fast = plan_session(sim_world, 9, START_MS, np.random.default_rng(3), time_scale=60.0)
    assert [p.event["event_type"] for p in real] == [p.event["event_type"] for p in fast]
    for r, f in zip(real[1:], fast[1:], strict=True):
        assert f.at_ms - START_MS == pytest.approx((r.at_ms - START_MS) / 60, abs=2)
        assert r.event.get("watched_sec") == f.event.get("watched_sec")


def _with_taste(world: SimWorld, genre: str) -> SimWorld:
    tastes = np.full_like(world.member_tastes, 0.01)
    tastes[:, GENRES.index(genre)] = 1.0
    return replace(world, member_tastes=tastes / tastes.sum(axis=1, keepdims=True))


def _played_genre_share(world: SimWorld, genre: str) -> float:
    index = {t: i for i, t in enumerate(world.title_ids)}
    played = [
        p.event["title_id"]
        for s in _sessions(world, 400, seed=11)
        for p in s
        if p.event["event_type"] == "play"
    ]
    g = GENRES.index(genre)
    return sum(1 for t in played if g in world.title_genres[index[t]]) / len(played)


@pytest.mark.parametrize("genre", ["horror", "comedy"])
def test_members_play_what_they_like(sim_world: SimWorld, genre: str) -> None:
    g = GENRES.index(genre)
    catalog_share = sum(1 for gs in sim_world.title_genres if g in gs) / sim_world.title_count
    assert _played_genre_share(_with_taste(sim_world, genre), genre) > 2 * catalog_share


def test_popular_titles_are_shown_more(sim_world: SimWorld) -> None:
    uniform = replace(sim_world, member_tastes=np.full_like(sim_world.member_tastes, 1 / 18))
    shown = Counter(
        t
        for s in _sessions(uniform, 300, seed=5)
        for p in s
        if p.event["event_type"] == "impression"
        for t in p.event["title_ids"]
    )
    order = np.argsort(-uniform.popularity)
    top = [uniform.title_ids[i] for i in order[:15]]
    bottom = [uniform.title_ids[i] for i in order[-150:]]
    # Per title: the head is shown several times as often as the long tail.
    assert np.mean([shown[t] for t in top]) > 4 * np.mean([shown[t] for t in bottom])


def test_only_titles_available_in_the_members_country_are_chosen(sim_world: SimWorld) -> None:
    rng = np.random.default_rng(0)
    for member in range(0, sim_world.member_count, 37):
        country = sim_world.member_country[member]
        chosen = choose_titles(sim_world, member, 40, rng)
        assert len(set(chosen.tolist())) == len(chosen)
        assert sim_world.available[chosen, country].all()


def test_a_country_without_titles_gets_an_empty_home_page(sim_world: SimWorld) -> None:
    nothing = replace(sim_world, available=np.zeros_like(sim_world.available))
    session = plan_session(nothing, 0, START_MS, np.random.default_rng(1))
    assert next(p.event["event_type"] for p in session) == "impression"
    assert all(p.event["event_type"] in {"impression", "search"} for p in session)


def test_members_are_more_active_in_the_evening(sim_world: SimWorld) -> None:
    # Nearly all members live between UTC-6 and UTC+10, most in Europe and the Americas.
    weight = {h: sim_world.member_cdf(h)[-1] for h in range(24)}
    busiest = max(weight, key=lambda h: weight[h])
    assert weight[busiest] > 3 * min(weight.values())
