"""Which members of a partition have been silent longer than the member TTL (event time).

A member who never comes back must not stay in memory for ever. Every state change files the
member under the hour of its watermark; :meth:`MemberClock.expired` hands back, oldest hour
first, the members whose hour ended before a cutoff (the partition's event time minus the
TTL). The index is a dict per member plus a set per hour: O(1) per change, and a sweep touches
only the members it returns.

    clock = MemberClock()
    clock.touch(b"u1", watermark_ms=1_700_000_000_000)
    clock.expired(before_ms=1_700_000_000_000 + 31 * DAY_MS)  # [b"u1"]
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["MemberClock"]

HOUR_MS = 3_600_000


class MemberClock:
    def __init__(self, bucket_ms: int = HOUR_MS) -> None:
        self._bucket_ms = bucket_ms
        self._bucket_of: dict[bytes, int] = {}
        self._members: dict[int, set[bytes]] = {}

    def __len__(self) -> int:
        return len(self._bucket_of)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._bucket_of)

    def touch(self, key: bytes, *, watermark_ms: int) -> None:
        bucket = watermark_ms // self._bucket_ms
        old = self._bucket_of.get(key)
        if old == bucket:
            return
        if old is not None:
            self._remove(key, old)
        self._bucket_of[key] = bucket
        self._members.setdefault(bucket, set()).add(key)

    def discard(self, key: bytes) -> None:
        old = self._bucket_of.pop(key, None)
        if old is not None:
            self._remove(key, old)

    def expired(self, *, before_ms: int) -> list[bytes]:
        """Remove and return the members whose watermark's hour ended at or before ``before_ms``
        (so a member is kept up to an hour past the TTL, never less)."""
        last = before_ms // self._bucket_ms  # buckets below this one ended by before_ms
        out: list[bytes] = []
        for bucket in sorted(b for b in self._members if b < last):
            for key in self._members.pop(bucket):
                del self._bucket_of[key]
                out.append(key)
        return out

    def _remove(self, key: bytes, bucket: int) -> None:
        members = self._members[bucket]
        members.discard(key)
        if not members:
            del self._members[bucket]
