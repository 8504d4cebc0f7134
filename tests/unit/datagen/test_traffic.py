"""The traffic model: exact counts per take, exact shares, duplicates, late and malformed events."""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pytest

from recsys_datagen.behaviour import plan_session
from recsys_datagen.sim_world import SimWorld
from recsys_datagen.traffic import DEFECTS, TrafficModel, TrafficShares
from tests.stub_ingest import contract_problems

NOW_MS = 1_780_000_000_000
TICK_MS = 100


def _model(world: SimWorld, shares: TrafficShares, **kw: Any) -> TrafficModel:
    return TrafficModel(world, np.random.default_rng(2), shares=shares, time_scale=60.0, **kw)


def _run(model: TrafficModel, ticks: int, per_tick: int) -> list[tuple[int, str, dict[str, Any]]]:
    out = []
    for tick in range(ticks):
        now = NOW_MS + tick * TICK_MS
        out += [(now, kind, e) for kind, e in model.take_tagged(now, per_tick)]
    return out


@pytest.mark.parametrize("count", [0, 1, 7, 250, 1_000])
def test_a_take_returns_exactly_the_count_asked_for(sim_world: SimWorld, count: int) -> None:
    model = _model(sim_world, TrafficShares(duplicate=0.1, late=0.1, malformed=0.1))
    for tick in range(5):
        assert len(model.take(NOW_MS + tick * TICK_MS, count)) == count


def test_shares_are_exact_over_a_run(sim_world: SimWorld) -> None:
    shares = TrafficShares(duplicate=0.05, late=0.1, malformed=0.02)
    events = _run(_model(sim_world, shares), ticks=200, per_tick=50)
    kinds = Counter(kind for _, kind, _ in events)
    assert sum(kinds.values()) == 10_000
    # Fractions are carried from take to take; only the first take has nothing to duplicate.
    assert kinds["malformed"] == 200
    assert kinds["late"] == 1_000
    assert 500 - 3 <= kinds["duplicate"] <= 500


def test_normal_events_are_valid_and_in_event_time_order(sim_world: SimWorld) -> None:
    events = _run(_model(sim_world, TrafficShares()), ticks=100, per_tick=40)
    normal = [(now, e) for now, kind, e in events if kind == "normal"]
    assert all(e["occurred_at"] <= now for now, e in normal)  # only what has happened
    times = [e["occurred_at"] for _, e in normal]
    assert times == sorted(times)
    for now, e in normal:
        assert not contract_problems(e, now_ms=now), e


def test_duplicates_resend_events_handed_out_before(sim_world: SimWorld) -> None:
    events = _run(_model(sim_world, TrafficShares(duplicate=0.1)), ticks=50, per_tick=40)
    seen: dict[str, dict[str, Any]] = {}
    duplicates = 0
    for _, kind, e in events:
        if kind == "duplicate":
            duplicates += 1
            assert seen[e["event_id"]] == e  # an earlier event, resent unchanged
        else:
            assert e["event_id"] not in seen
            seen[e["event_id"]] = e
    assert duplicates > 0


def test_late_events_happened_minutes_ago(sim_world: SimWorld) -> None:
    events = _run(_model(sim_world, TrafficShares(late=0.2)), ticks=50, per_tick=50)
    ages_min = [(now - e["occurred_at"]) / 60_000 for now, kind, e in events if kind == "late"]
    assert ages_min
    assert all(0 <= age <= 15 for age in ages_min)
    assert np.median(ages_min) > 1.0
    late = [e for now, kind, e in events if kind == "late"]
    assert all(not contract_problems(e, now_ms=NOW_MS) for e in late)


def test_malformed_events_break_the_contract(sim_world: SimWorld) -> None:
    model = _model(sim_world, TrafficShares(duplicate=0, late=0, malformed=0.2))
    events = _run(model, ticks=50, per_tick=50)
    malformed = [(now, e) for now, kind, e in events if kind == "malformed"]
    assert len(malformed) == 500
    assert all(contract_problems(e, now_ms=now) for now, e in malformed)
    assert set(model.defects) == set(DEFECTS)  # every defect shows up in 500 draws
    ids = Counter(e["event_id"] for _, _, e in events if "event_id" in e)
    assert max(ids.values()) == 1  # a malformed copy gets an event_id of its own


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_defect_breaks_a_valid_event(sim_world: SimWorld, defect: str) -> None:
    rng = np.random.default_rng(0)
    for planned in plan_session(sim_world, 1, NOW_MS, rng):
        event = copy.deepcopy(planned.event)
        assert not contract_problems(event, now_ms=NOW_MS)
        DEFECTS[defect](event, rng, NOW_MS)
        assert contract_problems(event, now_ms=NOW_MS), (defect, event)


def test_warm_start_begins_with_sessions_in_progress(sim_world: SimWorld) -> None:
    cold = _model(sim_world, TrafficShares(0, 0, 0))
    warm = _model(sim_world, TrafficShares(0, 0, 0))
    started = warm.warm_start(NOW_MS, rate=200)
    assert started > 0
    assert warm.in_flight > 0
    cold_kinds = Counter(e["event_type"] for e in cold.take(NOW_MS, 300))
    warm_kinds = Counter(e["event_type"] for e in warm.take(NOW_MS + 30_000, 300))
    # A cold start only has what happens at the start of sessions; a warm one has endings too.
    assert cold_kinds["complete"] == 0
    assert warm_kinds["complete"] > 0


def test_a_member_is_not_in_two_sessions_when_others_are_free(sim_world: SimWorld) -> None:
    model = _model(sim_world, TrafficShares(0, 0, 0))
    events = _run(model, ticks=20, per_tick=20)
    first_impression: dict[str, list[int]] = defaultdict(list)
    for _, _, e in events:
        if e["event_type"] == "impression" and e["row"] == "top_picks":
            first_impression[e["user_id"]].append(e["occurred_at"])
    repeats = sum(len(v) - 1 for v in first_impression.values())
    assert repeats <= len(first_impression) // 20


@pytest.mark.parametrize(
    ("duplicate", "late", "malformed"), [(0.6, 0, 0), (0, -0.1, 0), (0.45, 0.45, 0.1)]
)
def test_impossible_shares_are_refused(duplicate: float, late: float, malformed: float) -> None:
    with pytest.raises(ValueError, match="share"):
        TrafficShares(duplicate=duplicate, late=late, malformed=malformed)
