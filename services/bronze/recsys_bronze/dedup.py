"""The event_ids of a partition's recent records, so that a resent event becomes one bronze row.

    recent = RecentIds(max_ids=100_000, window_ms=300_000)
    recent.seen("0b6c8f0e-...", record.timestamp)   # False: new, now remembered
    recent.seen("0b6c8f0e-...", record.timestamp)   # True: a resend, drop it

Events are keyed by user_id, so a client's resend of an event lands in the same partition as the
first copy (while the partition count stays the same): a memory per partition is enough. It is a
FIFO bounded twice: by age (``window_ms`` behind the newest Kafka record timestamp read from the
partition) and by count (``max_ids``, the memory bound). Each id is stamped with the newest
timestamp seen when it was read, not its own, so the stamps never go backwards and expiry is a
pop from the front even when producers' clocks disagree. (``cachetools.TTLCache`` with the newest
timestamp as its timer does the same, but measured 320 instead of 176 bytes per id and 7.9
instead of 2.1 µs per record: at up to 100,000 ids per partition the memory decides.)

The memory is rebuilt from Kafka on every partition assignment: the writer re-reads the last
``max_ids`` records before the table's offset only to feed this, so after a restart or rebalance
the same recent ids are remembered as before it. (Only at the far edge of the window can the two
differ, when a resend and its first copy straddle the start of the re-read range.) The table's
exactly-once protocol is untouched: dedup only ever drops a record, and a dropped record's offset
is committed like any other, so a replay makes the same decision from the same memory.
"""

from __future__ import annotations

from collections import deque

__all__ = ["RecentIds"]


class RecentIds:
    __slots__ = ("_ids", "_max_ids", "_newest_ms", "_order", "_window_ms", "evicted_early")

    def __init__(self, *, max_ids: int, window_ms: int) -> None:
        if max_ids < 1 or window_ms < 0:
            raise ValueError(f"max_ids must be >= 1 and window_ms >= 0: {max_ids}, {window_ms}")
        self._max_ids = max_ids
        self._window_ms = window_ms
        self._ids: dict[str, int] = {}  # event_id -> stamp (ms) when first read
        self._order: deque[str] = deque()  # the same ids, oldest first
        self._newest_ms = 0
        self.evicted_early = 0  # ids forgotten for max_ids while still inside the window

    def __len__(self) -> int:
        return len(self._order)

    def take_evicted_early(self) -> int:
        """How many ids were forgotten early since the last call (for a counter metric)."""
        count, self.evicted_early = self.evicted_early, 0
        return count

    def seen(self, event_id: str, timestamp_ms: int) -> bool:
        """True if ``event_id`` was read within the window (a resend); else remember it."""
        # A record without a timestamp (-1) counts as read at the newest time seen.
        self._newest_ms = max(self._newest_ms, timestamp_ms)
        horizon = self._newest_ms - self._window_ms
        ids, order = self._ids, self._order
        while order and ids[order[0]] < horizon:
            del ids[order.popleft()]
        if event_id in ids:
            return True
        ids[event_id] = self._newest_ms
        order.append(event_id)
        if len(order) > self._max_ids:
            del ids[order.popleft()]  # still inside the window (the loop above kept it)
            self.evicted_early += 1
        return False
