"""StoreWriter: coalescing, the commit floor, backoff while a store is down, a bounded backlog."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry

from recsys_features.metrics import FeatureMetrics
from recsys_features.snapshot import FeatureSnapshot
from recsys_features.store_writer import StoreWriter


class _Store:
    """Records what it was asked to write; fails while ``down``; can hold a write open."""

    def __init__(self) -> None:
        self.down = False
        self.written: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.attempts = 0

    async def write(self, snapshots: Sequence[FeatureSnapshot], *, written_at_ms: int) -> None:
        self.attempts += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise ConnectionError("store down")
        self.written.append([s.user_id for s in snapshots])


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _snap(user: str, t: int = 0) -> FeatureSnapshot:
    return FeatureSnapshot(user, t, {})


def _writer(store: _Store, clock: _Clock | None = None, **options: int) -> StoreWriter:
    return StoreWriter(
        "redis",
        store.write,
        metrics=FeatureMetrics.create(registry=CollectorRegistry()),
        clock=clock or _Clock(),
        max_members=options.pop("max_members", 100),
        **options,
    )


async def test_a_member_changed_twice_is_written_once_with_its_newest_snapshot() -> None:
    store = _Store()
    writer = _writer(store)
    writer.put(b"a", 0, _snap("a", 1), offset=10)
    writer.put(b"a", 0, _snap("a", 2), offset=11)
    writer.put(b"b", 0, _snap("b", 1), offset=12)
    assert await writer.flush() == 2
    assert store.written == [["a", "b"]]


async def test_the_floor_is_the_lowest_offset_still_waiting_per_partition() -> None:
    store = _Store()
    writer = _writer(store, max_members=1)
    writer.put(b"a", 0, _snap("a"), offset=10)
    writer.put(b"b", 0, _snap("b"), offset=12)
    writer.put(b"c", 1, _snap("c"), offset=5)
    assert (writer.floor(0), writer.floor(1), writer.floor(2)) == (10, 5, None)
    writer.put(b"a", 0, _snap("a"), offset=14)  # a's newest record is what a restart re-reads
    assert writer.floor(0) == 12
    await writer.flush()  # writes a (one member per write; a keeps its place)
    assert store.written == [["a"]]
    assert writer.floor(0) == 12
    await writer.drain()
    assert (writer.floor(0), writer.floor(1)) == (None, None)


async def test_a_write_in_flight_holds_its_floor_and_a_newer_snapshot_supersedes_it() -> None:
    store = _Store()
    store.gate = asyncio.Event()
    writer = _writer(store)
    writer.put(b"a", 0, _snap("a", 1), offset=10)
    flushing = asyncio.create_task(writer.flush())
    await asyncio.sleep(0)
    assert writer.pending == {}  # taken, not written yet ...
    assert writer.floor(0) == 10  # ... so its offset is still held
    writer.put(b"a", 0, _snap("a", 2), offset=20)  # a batch folded during the write
    store.down = True
    store.gate.set()
    assert await flushing == 0
    # The failed write's snapshot is superseded: the floor is a's newest record.
    assert writer.floor(0) == 20
    assert writer.pending[b"a"].snapshot.event_time_ms == 2


async def test_a_failing_store_is_retried_with_growing_waits_and_nothing_is_dropped() -> None:
    store, clock = _Store(), _Clock()
    writer = _writer(store, clock, max_backoff_s=1)
    writer.put(b"a", 0, _snap("a"), offset=1)
    store.down = True
    for _ in range(40):  # 4 s of flush ticks every 0.1 s
        assert await writer.flush() == 0
        clock.now += 0.1
    # Waits of 0.1, 0.2, 0.4, 0.8, then 1 s: 6 attempts in 4 s instead of 40.
    assert store.attempts == 6
    failing_meanwhile = writer.failing
    assert list(writer.pending) == [b"a"]
    store.down = False
    clock.now += 1
    assert await writer.flush() == 1
    assert failing_meanwhile
    assert not writer.failing
    assert writer.floor(0) is None


async def test_has_room_turns_false_at_the_pending_bound() -> None:
    store = _Store()
    writer = _writer(store, max_pending=3)
    for i in range(3):
        assert writer.has_room()
        writer.put(f"m{i}".encode(), 0, _snap(f"m{i}"), offset=i)
    assert not writer.has_room()
    await writer.drain()
    assert writer.has_room()


@pytest.mark.parametrize("partitions", [{0}, {1}])
async def test_dropping_handed_over_partitions_releases_their_floor(partitions: set[int]) -> None:
    writer = _writer(_Store())
    writer.put(b"a", 0, _snap("a"), offset=3)
    writer.put(b"b", 1, _snap("b"), offset=4)
    writer.drop(partitions)
    kept = ({0, 1} - partitions).pop()
    assert writer.floor(partitions.pop()) is None
    assert writer.floor(kept) is not None
