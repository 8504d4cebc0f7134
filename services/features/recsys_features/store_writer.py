"""Coalesced, batched writes of members' feature snapshots to one store.

The job puts each changed member's newest snapshot here; a timer calls :meth:`StoreWriter.flush`,
which writes up to ``max_members`` of them in one store call. A member changed ten times between
two flushes is written once, with its newest values. Redis (the hot copy) is flushed every
100 ms, Cassandra (the durable copy) every second (docs/features.md, "Store writes").

    writer = StoreWriter("redis", redis_store.write, max_members=2000, metrics=metrics)
    writer.put(b"u1", 3, snapshot)
    await writer.flush()
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from recsys.log import get_logger
from recsys_features.metrics import FeatureMetrics
from recsys_features.snapshot import FeatureSnapshot

__all__ = ["StoreWriter", "WriteFn"]

log = get_logger(__name__)

# store.write(snapshots, written_at_ms=...)
WriteFn = Callable[..., Awaitable[None]]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class StoreWriter:
    def __init__(
        self, store: str, write: WriteFn, *, max_members: int, metrics: FeatureMetrics
    ) -> None:
        self.store = store
        self._write = write
        self._max = max_members
        self._metrics = metrics
        self.pending: dict[bytes, tuple[int, FeatureSnapshot]] = {}  # key -> (partition, snap)
        self._lock = asyncio.Lock()

    def put(self, key: bytes, partition: int, snapshot: FeatureSnapshot) -> None:
        self.pending[key] = (partition, snapshot)

    def drop(self, partitions: set[int]) -> None:
        """Forget what is pending for ``partitions`` (after they were handed over)."""
        for key in [k for k, (p, _) in self.pending.items() if p in partitions]:
            del self.pending[key]

    async def flush(self, partitions: set[int] | None = None) -> int:
        """Write up to ``max_members`` pending members (of ``partitions``, default all).

        Returns how many were written; 0 when the write failed (they stay pending and the next
        flush retries them, unless a newer snapshot replaced them meanwhile).
        """
        async with self._lock:
            keys = [
                k for k, (p, _) in self.pending.items() if partitions is None or p in partitions
            ][: self._max]
            if not keys:
                return 0
            # Taken out before the first await: a batch folded during the write puts newer
            # snapshots, which the next flush writes.
            taken = {key: self.pending.pop(key) for key in keys}
            snapshots: Sequence[FeatureSnapshot] = [snap for _, snap in taken.values()]
            started = time.perf_counter()
            try:
                await self._write(snapshots, written_at_ms=_now_ms())
            except Exception as exc:
                log.warning(
                    "store_write_failed", store=self.store, error=repr(exc), members=len(keys)
                )
                for key, entry in taken.items():
                    self.pending.setdefault(key, entry)
                return 0
            self._metrics.store_write.labels(store=self.store).observe(
                time.perf_counter() - started
            )
            done = _now_ms()
            freshness = self._metrics.freshness.labels(store=self.store)
            for snap in snapshots:
                freshness.observe(max(0.0, (done - snap.event_time_ms) / 1000))
            return len(snapshots)

    async def drain(self, partitions: set[int] | None = None) -> None:
        """Flush until nothing (of ``partitions``) is pending or a write fails."""
        while await self.flush(partitions) > 0:
            pass
