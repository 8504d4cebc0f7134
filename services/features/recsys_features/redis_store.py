"""The hot copy of members' real-time features in Redis (layout: docs/redis-keys.md).

Writes are absolute (HSET of whole values, DEL + RPUSH of the whole list), never increments,
so writing the same snapshot twice leaves the same data: replays are harmless. One pipeline
(MULTI/EXEC) per batch of members.

    store = RedisFeatureStore(redis, "rec:v1")
    await store.write(snapshots, written_at_ms=now_ms())
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from recsys_features.snapshot import HASH_FEATURES, LIST_FEATURE, FeatureSnapshot, ttl_seconds

__all__ = ["EVENT_TIME_FIELD", "WRITTEN_AT_FIELD", "RedisFeatureStore"]

EVENT_TIME_FIELD = "_event_time_ms"
WRITTEN_AT_FIELD = "_written_at_ms"


class RedisFeatureStore:
    def __init__(self, redis: Redis, key_prefix: str) -> None:
        self._redis = redis
        self._prefix = key_prefix
        # The hash lives as long as its longest-lived feature; readers apply each feature's own
        # TTL with _written_at_ms.
        self._hash_ttl = max(ttl_seconds(n) for n in HASH_FEATURES)
        self._list_ttl = ttl_seconds(LIST_FEATURE)

    def rt_key(self, user_id: str) -> str:
        return f"{self._prefix}:user:{user_id}:rt"

    def watched_key(self, user_id: str) -> str:
        return f"{self._prefix}:user:{user_id}:watched"

    async def write(self, snapshots: Sequence[FeatureSnapshot], *, written_at_ms: int) -> None:
        if not snapshots:
            return
        pipe = self._redis.pipeline(transaction=True)
        for snap in snapshots:
            mapping: dict[str, bytes | str] = {
                name: orjson.dumps(snap.values[name]) for name in HASH_FEATURES
            }
            mapping[EVENT_TIME_FIELD] = str(snap.event_time_ms)
            mapping[WRITTEN_AT_FIELD] = str(written_at_ms)
            key = self.rt_key(snap.user_id)
            pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
            pipe.expire(key, self._hash_ttl)
            watched_key = self.watched_key(snap.user_id)
            pipe.delete(watched_key)
            titles = snap.values[LIST_FEATURE]
            if titles:
                pipe.rpush(watched_key, *titles)
                pipe.expire(watched_key, self._list_ttl)
        await pipe.execute()

    async def read(self, user_id: str) -> tuple[dict[str, Any], int | None, int | None]:
        """(decoded feature values present, event time ms, written-at ms) of one member."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(self.rt_key(user_id))
        pipe.lrange(self.watched_key(user_id), 0, -1)
        raw, watched = await pipe.execute()
        values: dict[str, Any] = {}
        fields = {_text(k): v for k, v in raw.items()}
        for name in HASH_FEATURES:
            if name in fields:
                values[name] = orjson.loads(fields[name])
        if watched:
            values[LIST_FEATURE] = [_text(t) for t in watched]
        event_ms = int(fields[EVENT_TIME_FIELD]) if EVENT_TIME_FIELD in fields else None
        written_ms = int(fields[WRITTEN_AT_FIELD]) if WRITTEN_AT_FIELD in fields else None
        return values, event_ms, written_ms


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
