"""Coalesced, batched writes of members' feature snapshots to one store.

The job puts each changed member's newest snapshot here; a timer calls :meth:`StoreWriter.flush`,
which writes up to ``max_members`` of them in one store call. A member changed ten times between
two flushes is written once, with its newest values. Redis (the hot copy) is flushed every
100 ms, Cassandra (the durable copy) every second (docs/features.md, "Store writes").

    writer = StoreWriter("redis", redis_store.write, max_members=500, metrics=metrics)
    writer.put(b"u1", 3, snapshot, offset=1041)
    await writer.flush()
    writer.floor(3)  # None: nothing of partition 3 waits for this store

Two more duties make restarts cheap and outages safe:

- **The commit floor.** Each snapshot carries the offset of the member's latest event record;
  :meth:`floor` is the lowest such offset still waiting (pending or being written) per partition.
  The consumer never commits past it, so after a crash every member whose write was lost has a
  record re-delivered, and the fold writes that member again (docs/features.md, "Restarts").
- **Outages.** A failed write keeps its members pending and waits before the next attempt
  (doubling up to ``max_backoff_s``); :meth:`has_room` turns false once ``max_pending`` members
  wait, and the job then stops taking batches until the store is back.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

from recsys.log import get_logger
from recsys_features.metrics import FeatureMetrics
from recsys_features.snapshot import FeatureSnapshot

__all__ = ["StoreWriter", "WriteFn"]

log = get_logger(__name__)

# store.write(snapshots, written_at_ms=...)
WriteFn = Callable[..., Awaitable[None]]

FIRST_BACKOFF_S = 0.1


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Entry(NamedTuple):
    partition: int
    snapshot: FeatureSnapshot
    offset: int  # of the member's latest event record; -1 when not tied to one


class StoreWriter:
    def __init__(
        self,
        store: str,
        write: WriteFn,
        *,
        max_members: int,
        metrics: FeatureMetrics,
        max_pending: int = 1_000_000,
        max_backoff_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._write = write
        self._max = max_members
        self._metrics = metrics
        self._max_pending = max_pending
        self._max_backoff_s = max_backoff_s
        self._clock = clock
        self.pending: dict[bytes, _Entry] = {}
        # partition -> offset -> entries pending or in flight with that offset
        self._offsets: dict[int, Counter[int]] = {}
        self._lock = asyncio.Lock()
        self._failures = 0
        self._retry_at = 0.0
        self._failing_since: float | None = None
        # Every series of this store exists from the start, at 0 (alerts and rates need them).
        for family in (metrics.freshness, metrics.store_write, metrics.store_errors):
            family.labels(store=store)

    # -- queueing -------------------------------------------------------------------------------

    def put(self, key: bytes, partition: int, snapshot: FeatureSnapshot, offset: int = -1) -> None:
        old = self.pending.get(key)
        if old is not None:
            self._release(old)
        entry = _Entry(partition, snapshot, offset)
        self.pending[key] = entry
        self._hold(entry)

    def drop(self, partitions: set[int]) -> None:
        """Forget what is pending for ``partitions`` (after they were handed over)."""
        for key in [k for k, e in self.pending.items() if e.partition in partitions]:
            self._release(self.pending.pop(key))

    def floor(self, partition: int) -> int | None:
        """The lowest event offset of ``partition`` whose member still waits for this store."""
        held = self._offsets.get(partition)
        return min(held) if held else None

    def has_room(self) -> bool:
        return len(self.pending) < self._max_pending

    @property
    def failing(self) -> bool:
        return self._failing_since is not None

    def _hold(self, entry: _Entry) -> None:
        if entry.offset < 0:
            return
        held = self._offsets.get(entry.partition)
        if held is None:
            held = self._offsets[entry.partition] = Counter()
        held[entry.offset] += 1

    def _release(self, entry: _Entry) -> None:
        if entry.offset < 0:
            return
        held = self._offsets[entry.partition]
        held[entry.offset] -= 1
        if not held[entry.offset]:
            del held[entry.offset]

    # -- writing --------------------------------------------------------------------------------

    async def flush(self, partitions: set[int] | None = None, *, force: bool = False) -> int:
        """Write up to ``max_members`` pending members (of ``partitions``, default all).

        Returns how many were written; 0 when nothing was due, the store is in its backoff after
        a failure (unless ``force``), or the write failed (then they stay pending and a later
        flush retries them, unless a newer snapshot replaced them meanwhile).
        """
        async with self._lock:
            if not force and self._clock() < self._retry_at:
                return 0
            wanted = self.pending.items()
            keys = [k for k, e in wanted if partitions is None or e.partition in partitions]
            keys = keys[: self._max]
            if not keys:
                return 0
            # Taken out before the first await: a batch folded during the write puts newer
            # snapshots, which the next flush writes. Their offsets stay held until written.
            taken = {key: self.pending.pop(key) for key in keys}
            snapshots: Sequence[FeatureSnapshot] = [e.snapshot for e in taken.values()]
            started = time.perf_counter()
            try:
                await self._write(snapshots, written_at_ms=_now_ms())
            except Exception as exc:
                self._failed(exc, len(keys))
                for key, entry in taken.items():
                    if key in self.pending:  # superseded by a newer snapshot
                        self._release(entry)
                    else:
                        self.pending[key] = entry
                return 0
            for entry in taken.values():
                self._release(entry)
            self._succeeded()
            self._metrics.store_write.labels(store=self.store).observe(
                time.perf_counter() - started
            )
            done = _now_ms()
            freshness = self._metrics.freshness.labels(store=self.store)
            for snap in snapshots:
                freshness.observe(max(0.0, (done - snap.event_time_ms) / 1000))
            return len(snapshots)

    async def drain(self, partitions: set[int] | None = None) -> None:
        """Flush until nothing (of ``partitions``) is pending or a write fails (no backoff)."""
        while await self.flush(partitions, force=True) > 0:
            pass

    def _failed(self, exc: Exception, members: int) -> None:
        self._failures += 1
        delay = min(self._max_backoff_s, FIRST_BACKOFF_S * 2 ** (self._failures - 1))
        self._retry_at = self._clock() + delay
        self._metrics.store_errors.labels(store=self.store).inc()
        if self._failing_since is None:
            self._failing_since = self._clock()
        # Once per doubling, not once per attempt: an outage of minutes stays a few lines.
        if delay < self._max_backoff_s or self._failures % 10 == 0:
            log.warning(
                "store_write_failed",
                store=self.store,
                error=repr(exc),
                members=members,
                pending=len(self.pending) + members,
                failures=self._failures,
                retry_in_s=round(delay, 2),
            )

    def _succeeded(self) -> None:
        if self._failing_since is not None:
            log.info(
                "store_write_recovered",
                store=self.store,
                failures=self._failures,
                outage_s=round(self._clock() - self._failing_since, 1),
                pending=len(self.pending),
            )
        self._failures = 0
        self._retry_at = 0.0
        self._failing_since = None
