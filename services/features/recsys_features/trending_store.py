"""Per-country trending counts in Redis: one sorted set per (country, window, partition).

Each worker writes the partials of the partitions it owns, absolutely (DEL + ZADD in one
MULTI/EXEC), so a rewrite after a crash or a rebalance stores the same counts. Readers add the
partials of every partition up with ZUNION (docs/redis-keys.md).

    store = TrendingStore(redis, "rec:v1", partitions=6)
    await store.write(3, {("trending_titles_1h", "US"): {"tt1": 4}})
    await store.read("US", "trending_titles_1h", limit=20)  # ["tt1", ...]
"""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis

from recsys_features.snapshot import ttl_seconds
from recsys_features.trending import top_titles

__all__ = ["TrendingStore"]


class TrendingStore:
    def __init__(self, redis: Redis, key_prefix: str, *, partitions: int) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._partitions = partitions

    def key(self, country: str, feature: str, partition: int) -> str:
        return f"{self._prefix}:country:{country}:{feature}:p{partition}"

    async def write(
        self, partition: int, changed: Mapping[tuple[str, str], dict[str, int]]
    ) -> None:
        pipe = self._redis.pipeline(transaction=True)
        for (feature, country), counts in changed.items():
            key = self.key(country, feature, partition)
            pipe.delete(key)
            if counts:
                pipe.zadd(key, counts)
                pipe.expire(key, ttl_seconds(feature))
        await pipe.execute()

    async def read(self, country: str, feature: str, *, limit: int) -> list[tuple[str, int]]:
        """The country's top ``limit`` titles with their member counts, most played first."""
        keys = [self.key(country, feature, p) for p in range(self._partitions)]
        merged = await self._redis.zunion(keys, withscores=True)
        # withscores=True answers (member, score) pairs; the stub's union covers every mode.
        counts = [(_text(pair[0]), float(pair[1])) for pair in merged]  # type: ignore[arg-type]
        top = top_titles(counts, limit)
        by_title = dict(counts)
        return [(title, int(by_title[title])) for title in top]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
