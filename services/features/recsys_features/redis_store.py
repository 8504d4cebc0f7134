"""The hot copy of members' real-time features in Redis (layout: docs/redis-keys.md).

Writes are absolute (HSET of whole values, DEL + RPUSH of the whole list), never increments,
so writing the same snapshot twice leaves the same data: replays are harmless. A batch of members
is one call of a server-side script (:data:`WRITE_SCRIPT`), which is atomic and keeps the
client's work to one command per batch: redis-py packs commands in Python, and five commands
per member cost more CPU than folding the member's events did.

    store = RedisFeatureStore(redis, "rec:v1")
    await store.write(snapshots, written_at_ms=now_ms())
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from recsys.features.online import (
    EVENT_TIME_FIELD,
    WRITTEN_AT_FIELD,
    read_redis_user,
    rt_key,
    watched_key,
)
from recsys_features.snapshot import HASH_FEATURES, LIST_FEATURE, FeatureSnapshot, ttl_seconds

__all__ = ["EVENT_TIME_FIELD", "WRITE_SCRIPT", "WRITTEN_AT_FIELD", "RedisFeatureStore"]

# KEYS: per member its hash, then its watched list. ARGV[1]: hash TTL, ARGV[2]: list TTL, then
# per member a JSON array of the hash's field/value pairs and a JSON array of title ids.
WRITE_SCRIPT = """
local hash_ttl, list_ttl = ARGV[1], ARGV[2]
for i = 1, #KEYS, 2 do
  redis.call('HSET', KEYS[i], unpack(cjson.decode(ARGV[i + 2])))
  redis.call('EXPIRE', KEYS[i], hash_ttl)
  redis.call('DEL', KEYS[i + 1])
  local titles = cjson.decode(ARGV[i + 3])
  if #titles > 0 then
    redis.call('RPUSH', KEYS[i + 1], unpack(titles))
    redis.call('EXPIRE', KEYS[i + 1], list_ttl)
  end
end
return #KEYS / 2
"""


class RedisFeatureStore:
    def __init__(self, redis: Redis, key_prefix: str) -> None:
        self._redis = redis
        self._prefix = key_prefix
        # The hash lives as long as its longest-lived feature; readers apply each feature's own
        # TTL with _written_at_ms.
        self._hash_ttl = max(ttl_seconds(n) for n in HASH_FEATURES)
        self._list_ttl = ttl_seconds(LIST_FEATURE)
        self._script = redis.register_script(WRITE_SCRIPT)  # EVALSHA, reloaded if flushed

    def rt_key(self, user_id: str) -> str:
        return rt_key(self._prefix, user_id)

    def watched_key(self, user_id: str) -> str:
        return watched_key(self._prefix, user_id)

    async def write(self, snapshots: Sequence[FeatureSnapshot], *, written_at_ms: int) -> None:
        if not snapshots:
            return
        keys: list[str] = []
        args: list[bytes | int] = [self._hash_ttl, self._list_ttl]
        written_at = str(written_at_ms)
        for snap in snapshots:
            fields: list[str] = []
            for name in HASH_FEATURES:
                fields += (name, orjson.dumps(snap.values[name]).decode())
            fields += (EVENT_TIME_FIELD, str(snap.event_time_ms), WRITTEN_AT_FIELD, written_at)
            keys += (self.rt_key(snap.user_id), self.watched_key(snap.user_id))
            args += (orjson.dumps(fields), orjson.dumps(snap.values[LIST_FEATURE]))
        await self._script(keys=keys, args=args)

    async def read(self, user_id: str) -> tuple[dict[str, Any], int | None, int | None]:
        """(decoded feature values present, event time ms, written-at ms) of one member."""
        found = await read_redis_user(self._redis, self._prefix, user_id)
        return found.values, found.event_time_ms, found.written_at_ms
