"""Client-side sending: batching, counting, retry on 503, percentiles, and the simulator loop.

The server is a stub (tests/stub_ingest.py) reached in-process through httpx.ASGITransport;
the real ingest service has its own end-to-end tests.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import numpy as np
import pytest

from recsys.clients.ingest import IngestClient
from recsys_datagen.behaviour import plan_session
from recsys_datagen.reporting import progress_line, simulation_lines
from recsys_datagen.sender import BatchSender, latency_percentiles, rejection_reasons
from recsys_datagen.sim_world import SimWorld
from recsys_datagen.simulator import SimulationConfig, Snapshot, run_simulation
from recsys_datagen.traffic import TrafficModel, TrafficShares
from tests.stub_ingest import StubState, create_stub_app

API_KEY = "local-dev-key"
NOW_MS = 1_780_000_000_000


def _client(app: Any, **kw: Any) -> IngestClient:
    return IngestClient(
        "http://stub", api_key=API_KEY, transport=httpx.ASGITransport(app=app), **kw
    )


def _events(world: SimWorld, count: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(4)
    out: list[dict[str, Any]] = []
    while len(out) < count:
        out += [p.event for p in plan_session(world, int(rng.integers(0, 100)), NOW_MS, rng)]
    return out[:count]


def test_percentiles_are_nearest_rank() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1 ms ... 100 ms
    assert latency_percentiles(values) == {50: 0.05, 90: 0.09, 99: 0.099}
    assert latency_percentiles([0.004]) == {50: 0.004, 90: 0.004, 99: 0.004}
    assert latency_percentiles([]) == {}


def test_rejection_reasons_group_the_same_problem_across_positions() -> None:
    body = {
        "accepted": 1,
        "rejected": 3,
        "results": [
            {"index": 0, "event_id": "a", "status": "accepted"},
            {
                "index": 1,
                "status": "rejected",
                "errors": [{"loc": "events[1].rating", "msg": "1-5"}],
            },
            {
                "index": 2,
                "status": "rejected",
                "errors": [{"loc": "events[2].rating", "msg": "1-5"}],
            },
            {
                "index": 3,
                "status": "rejected",
                "errors": [{"loc": "events[3].title_ids[7]", "msg": "id"}],
            },
        ],
    }
    assert rejection_reasons(body, 202, 3) == Counter({"rating: 1-5": 2, "title_ids[]: id": 1})
    assert rejection_reasons({"detail": "bad API key"}, 401, 4) == Counter(
        {"HTTP 401: bad API key": 4}
    )


async def test_accepted_and_rejected_are_counted_per_event(sim_world: SimWorld) -> None:
    app = create_stub_app()
    events = _events(sim_world, 120)
    events[3] = {**events[3], "device": "toaster"}
    events[70] = {**events[70], "country": "usa"}
    async with _client(app) as client:
        sender = BatchSender(client, concurrency=2)
        for i in range(0, 120, 50):
            await sender.submit(events[i : i + 50])
        await sender.drain()
    stats = sender.stats
    assert (stats.batches, stats.events, stats.accepted, stats.rejected) == (3, 120, 118, 2)
    assert stats.statuses == Counter({202: 3})
    assert stats.reasons == Counter({"device: unknown": 1, "country: not ISO alpha-2": 1})
    assert len(stats.latencies_s) == 3
    state: StubState = app.state.stub
    assert [len(b) for b in state.batches] == [50, 50, 20]


async def test_a_batch_with_nothing_valid_counts_as_rejected(sim_world: SimWorld) -> None:
    app = create_stub_app()
    events = [
        {**e, "rating": 9, "event_type": "rate", "title_id": "t000001"}
        for e in _events(sim_world, 5)
    ]
    async with _client(app) as client:
        sender = BatchSender(client)
        await sender.submit(events)
        await sender.drain()
    assert (sender.stats.accepted, sender.stats.rejected) == (0, 5)
    assert sender.stats.statuses == Counter({422: 1})
    assert sender.stats.reasons == Counter({"rating: must be an integer 1-5": 5})


async def test_503_is_retried_after_retry_after(sim_world: SimWorld) -> None:
    app = create_stub_app(unavailable_first=2, retry_after="0")
    async with _client(app) as client:
        sender = BatchSender(client)
        await sender.submit(_events(sim_world, 10))
        await sender.drain()
    assert (sender.stats.accepted, sender.stats.failed, sender.stats.retried_batches) == (10, 0, 1)
    assert app.state.stub.calls == 3


async def test_no_answer_within_the_retry_budget_counts_as_failed(sim_world: SimWorld) -> None:
    app = create_stub_app(unavailable_first=10**9, retry_after="0.05")
    async with _client(app, max_wait_s=0.2) as client:
        sender = BatchSender(client)
        await sender.submit(_events(sim_world, 10))
        await sender.drain()
    assert (sender.stats.accepted, sender.stats.failed) == (0, 10)
    (reason,) = sender.stats.reasons
    assert reason.startswith("ingest unavailable")


async def test_batches_in_flight_never_exceed_the_concurrency() -> None:
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(202, json={"accepted": 1, "rejected": 0, "results": []})

    transport = httpx.MockTransport(handler)
    async with IngestClient("http://stub", api_key=API_KEY, transport=transport) as client:
        sender = BatchSender(client, concurrency=3)
        for _ in range(12):
            await sender.submit([{"event_id": "x"}])
            assert sender.in_flight <= 3
        await sender.drain()
    assert peak == 3
    assert sender.stats.batches == 12


async def test_the_simulation_sends_exactly_rate_times_duration(sim_world: SimWorld) -> None:
    app = create_stub_app()
    shares = TrafficShares(duplicate=0.02, late=0.04, malformed=0.02)
    model = TrafficModel(sim_world, np.random.default_rng(9), shares=shares, time_scale=60.0)
    config = SimulationConfig(
        rate=800, duration_s=0.6, tick_s=0.05, batch_size=25, report_every_s=0.2
    )
    snapshots: list[Snapshot] = []
    async with _client(app) as client:
        report = await run_simulation(
            model, BatchSender(client, concurrency=4), config, on_progress=snapshots.append
        )
    # The pacer owes int(rate x elapsed) at every tick, so the total is exact however late the
    # ticks were; only the achieved rate (reported, not asserted) depends on the machine.
    assert report.handed_out == 480
    assert sum(report.kinds.values()) == 480
    assert report.stats.events == 480
    assert report.stats.accepted + report.stats.rejected == 480
    assert report.stats.rejected == report.kinds["malformed"] > 0
    assert report.stats.failed == 0
    state: StubState = app.state.stub
    assert all(len(batch) <= 25 for batch in state.batches)
    assert sum(len(batch) for batch in state.batches) == 480
    assert snapshots
    assert snapshots[-1].handed_out <= 480
    assert "sent" in progress_line(snapshots[-1])
    text = "\n".join(simulation_lines(report))
    assert "480 events handed out" in text
    assert "p99" in text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0, "duration_s": 1},
        {"rate": 1, "duration_s": 0},
        {"rate": 1, "duration_s": 1, "batch_size": 0},
    ],
)
def test_a_nonsense_simulation_config_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="positive"):
        SimulationConfig(**kwargs)
