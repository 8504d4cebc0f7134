"""Per-country title popularity over sliding event-time windows, per partition (pure logic).

``trending_titles_1h`` and ``trending_titles_24h`` (registry, entity country) count, for each
title, the **distinct members** of the country whose most recent play of the title falls in the
window. The counts are derived from the members' states (their country and the play times in
``recently_watched_title_ids``), never from a second store of events, so they are recovered with
the states and a replay cannot count anything twice.

Members live in partitions, so each worker keeps one :class:`PartitionTrending` per partition it
owns and writes that partition's counts as a partial (docs/redis-keys.md); readers add the
partials up (``ZUNION``). A window is bucketed (1 h in 1-minute buckets, 24 h in 15-minute
buckets) and slides with the partition's watermark (its newest member event time).

    trending = PartitionTrending()
    trending.update(b"u1", country="US", plays=[("tt1", 1_700_000_000_000)], watermark_ms=...)
    trending.take_dirty()  # {("trending_titles_1h", "US"): {"tt1": 1}, ...}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from recsys.features import FEATURES

__all__ = ["WINDOWS", "PartitionTrending", "Window", "top_titles"]

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Window:
    feature: str  # registry name
    length_ms: int
    bucket_ms: int

    def oldest_bucket(self, watermark_ms: int) -> int:
        """The oldest bucket still inside the window ending at ``watermark_ms``."""
        return (watermark_ms - self.length_ms) // self.bucket_ms + 1


def _window(name: str, bucket_ms: int) -> Window:
    window = FEATURES[name].window
    assert window is not None, name
    return Window(name, int(window.total_seconds() * 1000), bucket_ms)


WINDOWS: tuple[Window, ...] = (
    _window("trending_titles_1h", MINUTE_MS),
    _window("trending_titles_24h", 15 * MINUTE_MS),
)

Play = tuple[str, int]  # title, time of the member's most recent play of it


@dataclass(slots=True)
class _WindowCounts:
    window: Window
    buckets: dict[int, Counter[tuple[str, str]]] = field(default_factory=dict)
    totals: dict[str, Counter[str]] = field(default_factory=dict)  # country -> title -> n
    expired_below: int = 0  # every bucket below this one has been expired

    def add(self, country: str, title: str, at_ms: int, delta: int, oldest: int) -> str | None:
        bucket = at_ms // self.window.bucket_ms
        if bucket < oldest:
            return None  # outside the window (or already expired and subtracted)
        counts = self.buckets.get(bucket)
        if counts is None:
            counts = self.buckets[bucket] = Counter()
        counts[(country, title)] += delta
        if not counts[(country, title)]:
            del counts[(country, title)]
        totals = self.totals.get(country)
        if totals is None:
            totals = self.totals[country] = Counter()
        totals[title] += delta
        if not totals[title]:
            del totals[title]
        return country

    def expire(self, oldest: int) -> set[str]:
        changed: set[str] = set()
        if oldest <= self.expired_below:  # the window has not crossed a bucket boundary
            return changed
        self.expired_below = oldest
        for bucket in [b for b in self.buckets if b < oldest]:
            for (country, title), n in self.buckets.pop(bucket).items():
                totals = self.totals[country]
                totals[title] -= n
                if not totals[title]:
                    del totals[title]
                changed.add(country)
        return changed


class PartitionTrending:
    """Distinct-member play counts per country and title of one partition's members."""

    def __init__(self, windows: Sequence[Window] = WINDOWS) -> None:
        self.watermark_ms = 0
        self._members: dict[bytes, tuple[str, tuple[Play, ...]]] = {}
        self._counts = [_WindowCounts(w) for w in windows]
        self._dirty: set[tuple[str, str]] = set()  # (feature, country)
        # Members by the bucket (of the longest window) of their newest play: once that bucket
        # leaves the window, none of their plays counts and they are forgotten, so the members
        # held are those who played inside the longest window, not everyone who ever played.
        self._longest = max(windows, key=lambda w: w.length_ms)
        self._bucket_of: dict[bytes, int] = {}
        self._by_bucket: dict[int, set[bytes]] = {}
        self._members_expired_below = 0

    def __len__(self) -> int:
        """Members whose plays are held (they played inside the longest window)."""
        return len(self._members)

    def update(
        self, member: bytes, *, country: str, plays: Iterable[Play], watermark_ms: int
    ) -> None:
        """Replace ``member``'s contribution with its current country and plays."""
        new = (country, tuple(plays)) if country else ("", ())
        old = self._members.get(member)
        if old == new and watermark_ms <= self.watermark_ms:
            return
        self._advance(watermark_ms)
        removed: Iterable[Play] = old[1] if old is not None else ()
        added: Iterable[Play] = new[1]
        if old is not None and old[0] == new[0]:
            # Usually one play changed out of up to 50: apply only the difference.
            before, after = set(old[1]), set(new[1])
            removed, added = before - after, after - before
        for counts in self._counts:
            oldest = counts.window.oldest_bucket(self.watermark_ms)
            if old is not None:
                for title, at_ms in removed:
                    self._mark(counts, counts.add(old[0], title, at_ms, -1, oldest))
            for title, at_ms in added:
                self._mark(counts, counts.add(new[0], title, at_ms, +1, oldest))
        if new[1]:
            self._members[member] = new
            self._index(member, max(at_ms for _, at_ms in new[1]) // self._longest.bucket_ms)
        else:
            self.forget(member)

    def forget(self, member: bytes) -> None:
        """Stop holding ``member``'s plays (evicted; or no plays left). Counts are unchanged:
        call it only for members whose plays are outside every window, or after ``update``."""
        self._members.pop(member, None)
        self._forget_index(member)

    def _index(self, member: bytes, bucket: int) -> None:
        if self._bucket_of.get(member) == bucket:
            return
        self._forget_index(member)
        self._bucket_of[member] = bucket
        self._by_bucket.setdefault(bucket, set()).add(member)

    def _forget_index(self, member: bytes) -> None:
        bucket = self._bucket_of.pop(member, None)
        if bucket is not None:
            members = self._by_bucket[bucket]
            members.discard(member)
            if not members:
                del self._by_bucket[bucket]

    def _advance(self, watermark_ms: int) -> None:
        if watermark_ms <= self.watermark_ms:
            return
        self.watermark_ms = watermark_ms
        for counts in self._counts:
            for country in counts.expire(counts.window.oldest_bucket(watermark_ms)):
                self._dirty.add((counts.window.feature, country))
        oldest = self._longest.oldest_bucket(watermark_ms)
        if oldest <= self._members_expired_below:
            return
        self._members_expired_below = oldest
        for bucket in [b for b in self._by_bucket if b < oldest]:
            for member in self._by_bucket.pop(bucket):
                del self._bucket_of[member]
                del self._members[member]

    def _mark(self, counts: _WindowCounts, country: str | None) -> None:
        if country is not None:
            self._dirty.add((counts.window.feature, country))

    def counts(self, feature: str, country: str) -> dict[str, int]:
        for counts in self._counts:
            if counts.window.feature == feature:
                return dict(counts.totals.get(country, {}))
        raise KeyError(feature)

    def take_dirty(self) -> dict[tuple[str, str], dict[str, int]]:
        """The current counts of every (feature, country) changed since the last call."""
        dirty, self._dirty = self._dirty, set()
        return {(feature, country): self.counts(feature, country) for feature, country in dirty}

    def restore_dirty(self, keys: Iterable[tuple[str, str]]) -> None:
        """Mark (feature, country) pairs changed again (their write failed)."""
        self._dirty.update(keys)


def top_titles(counts: Iterable[tuple[str, float]], limit: int) -> list[str]:
    """Titles by count, most first; ties by title id so every reader agrees."""
    ranked = sorted(counts, key=lambda tc: (-tc[1], tc[0]))
    return [title for title, n in ranked[:limit] if n > 0]
