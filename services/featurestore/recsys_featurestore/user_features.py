"""A member's features from the tiers: L1 (this process), L2 Redis, L3 Cassandra, defaults.

Real-time values come from Redis (written by the stream job every 100 ms), kept in L1 for
``realtime_cache_ttl_s`` so a play reaches the next request within the freshness target. Batch
values (the daily job's ``_batch`` and ``_static`` rows) come from the member's Cassandra
partition, kept in L1 for ``batch_cache_ttl_s``: they change once a day. When Redis cannot be read,
the real-time values come from the durable copy in the same partition (``_realtime``, written
every second), read fresh, and the answer says so; when neither store answers, every value is
the registry default, flagged.

A real-time value counts while its registry TTL has not run out since it was written (the Redis
hash lives as long as its longest feature); its age is now minus the event time it reflects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cachetools import TTLCache

from recsys.features import FEATURES, Entity
from recsys.features.online import (
    BATCH_ROW,
    LIST_FEATURE,
    REALTIME_ROW,
    STATIC_ROW,
    USER_FEATURES,
    RedisSnapshot,
    StoredRow,
    read_partition,
    read_redis_user,
    ttl_seconds,
)
from recsys.log import get_logger
from recsys.serving.features import Source
from recsys.serving.metrics import CACHE_LOOKUPS

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from recsys.clients.cassandra import CassandraClient
    from recsys.config import FeatureStoreSettings
    from recsys.serving.handler import Deadline

__all__ = ["ALL_USER_FEATURES", "ServedFeature", "UserFeatureReader", "UserFeatures"]

log = get_logger(__name__)

ALL_USER_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES.select(entity=Entity.USER))
_REALTIME = frozenset(USER_FEATURES)
_TTL_MS = {name: ttl_seconds(name) * 1000 for name in USER_FEATURES}
# The lookup counters, bound once: `.labels()` on every lookup of every call costs ~2 us each.
_LOOKUPS = {
    (tier, result): CACHE_LOOKUPS.labels(tier=tier, result=result)
    for tier in ("memory", "redis", "cassandra")
    for result in ("hit", "miss", "error")
}


def _lookup(tier: str, result: str) -> None:
    _LOOKUPS[tier, result].inc()


# Bounds one store call when the caller sent no deadline.
_STORE_TIMEOUT_S = 0.5


@dataclass(frozen=True, slots=True)
class ServedFeature:
    value: Any
    source: Source.ValueType
    event_time_ms: int | None  # None for a default

    def age_ms(self, now_ms: int) -> int:
        return -1 if self.event_time_ms is None else max(0, now_ms - self.event_time_ms)


@dataclass(frozen=True, slots=True)
class UserFeatures:
    features: dict[str, ServedFeature]
    realtime_unavailable: bool
    batch_unavailable: bool = False


class UserFeatureReader:
    def __init__(
        self,
        settings: FeatureStoreSettings,
        *,
        redis: Redis | None,
        redis_prefix: str,
        cassandra: CassandraClient | None,
        keyspace: str,
    ) -> None:
        self._redis = redis
        self._prefix = redis_prefix
        self.cassandra = cassandra
        self._keyspace = keyspace
        self._realtime: TTLCache[str, RedisSnapshot] | None = (
            TTLCache(settings.cache_max_members, settings.realtime_cache_ttl_s)
            if settings.realtime_cache_ttl_s > 0
            else None
        )
        self._batch: TTLCache[str, dict[str, StoredRow]] | None = (
            TTLCache(settings.cache_max_members, settings.batch_cache_ttl_s)
            if settings.batch_cache_ttl_s > 0
            else None
        )

    async def read(
        self, user_id: str, names: Sequence[str], *, now_ms: int, deadline: Deadline | None
    ) -> UserFeatures:
        """The features ``names`` of ``user_id`` (registry user features), one per name. Each
        store read may take what is left of ``deadline`` (at most 0.5 s)."""

        def timeout() -> float:
            return _STORE_TIMEOUT_S if deadline is None else deadline.timeout(_STORE_TIMEOUT_S)

        want_realtime = any(n in _REALTIME for n in names)
        want_batch = any(n not in _REALTIME for n in names)
        partition: dict[str, StoredRow] | None = {}
        partition_cached = False
        batch_failed = False
        if want_batch:
            # Both tiers at once: the answer waits for the slower one, not for their sum.
            (snapshot, realtime_cached), (partition, partition_cached) = await asyncio.gather(
                self._realtime_values(user_id, want_realtime, timeout()),
                self._partition(user_id, timeout(), fresh=False),
            )
            batch_failed = partition is None
        else:
            snapshot, realtime_cached = await self._realtime_values(
                user_id, want_realtime, timeout()
            )
        redis_failed = want_realtime and snapshot is None
        if redis_failed and (partition_cached or not want_batch):
            # The durable copy of the real-time values stands in for Redis: read it fresh (and
            # keep the cached batch rows should Cassandra not answer either).
            fresh, fresh_cached = await self._partition(user_id, timeout(), fresh=True)
            if fresh is not None:
                partition, partition_cached = fresh, fresh_cached
        elif not want_batch and want_realtime and _incomplete(snapshot, names, now_ms):
            partition, partition_cached = await self._partition(user_id, timeout(), fresh=False)
        rows = partition or {}
        served: dict[str, ServedFeature] = {}
        for name in names:
            found = None
            if name in _REALTIME:
                found = _from_redis(snapshot, name, now_ms, realtime_cached)
                if found is None:
                    found = _from_row(rows.get(REALTIME_ROW), name, now_ms, partition_cached)
            else:
                found = _from_row(rows.get(BATCH_ROW), name, None, partition_cached)
                if found is None:
                    found = _from_row(rows.get(STATIC_ROW), name, None, partition_cached)
            served[name] = found or _default(name)
        return UserFeatures(
            served, realtime_unavailable=redis_failed, batch_unavailable=batch_failed
        )

    async def _realtime_values(
        self, user_id: str, wanted: bool, limit_s: float
    ) -> tuple[RedisSnapshot | None, bool]:
        """(Redis snapshot, whether it came from L1); None when Redis could not be read."""
        if not wanted:
            return None, False
        cache = self._realtime
        if cache is not None:
            hit = cache.get(user_id)
            if hit is not None:
                _lookup("memory", "hit")
                return hit, True
            _lookup("memory", "miss")
        if self._redis is None:
            return None, False
        try:
            async with asyncio.timeout(limit_s):
                snapshot = await read_redis_user(self._redis, self._prefix, user_id)
        except Exception as exc:  # ConnectionError, TimeoutError, ...: degrade, never fail
            _lookup("redis", "error")
            log.debug("redis read failed", error=repr(exc))
            return None, False
        _lookup("redis", "hit" if snapshot.event_time_ms is not None else "miss")
        if cache is not None:
            cache[user_id] = snapshot
        return snapshot, False

    async def _partition(
        self, user_id: str, limit_s: float, *, fresh: bool
    ) -> tuple[dict[str, StoredRow] | None, bool]:
        """(the member's Cassandra rows, whether they came from L1); None when unreadable."""
        cache = self._batch
        if cache is not None and not fresh:
            hit = cache.get(user_id)
            if hit is not None:
                _lookup("memory", "hit")
                return hit, True
            _lookup("memory", "miss")
        if self.cassandra is None:  # not connected (yet): as good as down
            _lookup("cassandra", "error")
            return None, False
        try:
            async with asyncio.timeout(limit_s):
                rows = await read_partition(self.cassandra, self._keyspace, Entity.USER, user_id)
        except Exception as exc:  # NoHostAvailable, OperationTimedOut, TimeoutError, ...
            _lookup("cassandra", "error")
            log.debug("cassandra read failed", error=repr(exc))
            return None, False
        _lookup("cassandra", "hit" if rows else "miss")
        if cache is not None:
            cache[user_id] = rows
        return rows, False


def _incomplete(snapshot: RedisSnapshot | None, names: Sequence[str], now_ms: int) -> bool:
    """Whether some real-time name is not served fresh from ``snapshot``."""
    return any(n in _REALTIME and _from_redis(snapshot, n, now_ms, False) is None for n in names)


def _from_redis(
    snapshot: RedisSnapshot | None, name: str, now_ms: int, cached: bool
) -> ServedFeature | None:
    if snapshot is None or name not in snapshot.values:
        return None
    # The watched list has its own key and TTL: present means fresh.
    if name != LIST_FEATURE and (
        snapshot.written_at_ms is None or now_ms - snapshot.written_at_ms > _TTL_MS[name]
    ):
        return None
    source = Source.FEATURE_SOURCE_MEMORY if cached else Source.FEATURE_SOURCE_REDIS
    return ServedFeature(snapshot.values[name], source, snapshot.event_time_ms)


def _from_row(
    row: StoredRow | None, name: str, now_ms: int | None, cached: bool
) -> ServedFeature | None:
    """A value of a Cassandra row; with ``now_ms``, only while its registry TTL has not run out
    since it was written (Cassandra's row TTL is the longest of the row's features)."""
    if row is None or name not in row.values:
        return None
    if now_ms is not None and now_ms - row.written_at_ms > _TTL_MS[name]:
        return None
    source = Source.FEATURE_SOURCE_MEMORY if cached else Source.FEATURE_SOURCE_CASSANDRA
    return ServedFeature(row.values[name], source, row.event_time_ms)


def _default(name: str) -> ServedFeature:
    default = FEATURES[name].default
    value = list(default) if isinstance(default, tuple) else default
    return ServedFeature(value, Source.FEATURE_SOURCE_DEFAULT, None)
