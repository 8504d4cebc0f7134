"""Fallback lists in the real Redis: generations behind a pointer, TTLs, reloads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
from redis.asyncio import Redis

from recsys.config import Settings
from recsys.models import FALLBACKS_MODEL, FallbackLists, ModelRegistry
from recsys.models.fallbacks import current_key, list_key, read_fallback
from recsys_pipelines.fallbacks import (
    OLD_GENERATION_GRACE_S,
    ensure_fallbacks_in_redis,
    publish_fallbacks,
    write_fallbacks_to_redis,
)

TTL = 3600


def lists(top: str) -> FallbackLists:
    return FallbackLists(
        as_of=date(2026, 11, 20),
        window_days=30,
        top_n=3,
        global_titles=(top, "t2", "t3"),
        countries={"US": (top, "t2"), "GB": ("t2",)},
        country_genres={"US": {"drama": (top,), "comedy": ("t2",)}},
    )


@pytest.fixture
async def prefix(redis: Redis, infra: Settings, unique: str) -> AsyncIterator[str]:
    prefix = f"{infra.redis.key_prefix}:test:{unique}"
    yield prefix
    keys = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)


async def test_a_generation_is_written_whole_then_pointed_at(redis: Redis, prefix: str) -> None:
    assert await read_fallback(redis, prefix, "US") == []  # nothing yet: the caller steps down
    written = await write_fallbacks_to_redis(redis, prefix, lists("t1"), "v0001", TTL)
    assert written == 5  # global, US, GB, US:drama, US:comedy
    assert await redis.get(current_key(prefix)) == b"v0001"
    assert await redis.lrange(f"{prefix}:fallback:v0001:global", 0, -1) == [b"t1", b"t2", b"t3"]
    assert await redis.lrange(f"{prefix}:fallback:v0001:US:drama", 0, -1) == [b"t1"]
    assert await read_fallback(redis, prefix, "US") == ["t1", "t2"]
    assert await read_fallback(redis, prefix, "US", "comedy", k=1) == ["t2"]
    assert await read_fallback(redis, prefix) == ["t1", "t2", "t3"]
    keys = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
    ttls = [await redis.ttl(k) for k in keys]
    assert len(keys) == 6  # and the pointer
    assert all(0 < t <= TTL for t in ttls)


async def test_a_new_generation_replaces_the_old_one(redis: Redis, prefix: str) -> None:
    await write_fallbacks_to_redis(redis, prefix, lists("t1"), "v0001", TTL)
    # A writer that died half-way through generation v0002 never moved the pointer:
    await redis.rpush(list_key(prefix, "v0002", "US"), "tX")
    assert await read_fallback(redis, prefix, "US") == ["t1", "t2"]
    # A complete v0002 replaces the partial one and moves the pointer; v0001 expires soon.
    await write_fallbacks_to_redis(redis, prefix, lists("t9"), "v0002", TTL)
    assert await read_fallback(redis, prefix, "US") == ["t9", "t2"]
    assert 0 < await redis.ttl(list_key(prefix, "v0001", "US")) <= OLD_GENERATION_GRACE_S
    assert await redis.ttl(list_key(prefix, "v0002", "US")) > OLD_GENERATION_GRACE_S


async def test_redis_is_reloaded_from_the_registry(
    redis: Redis, prefix: str, tmp_path: Path
) -> None:
    registry = ModelRegistry(tmp_path / "models")
    assert await ensure_fallbacks_in_redis(redis, prefix, registry, TTL) is None  # none registered
    version = publish_fallbacks(registry, lists("t1"), {"as_of": "2026-11-20"})
    registry.promote(FALLBACKS_MODEL, version)
    assert await ensure_fallbacks_in_redis(redis, prefix, registry, TTL) == version
    assert await read_fallback(redis, prefix, "US", "drama") == ["t1"]
    assert await ensure_fallbacks_in_redis(redis, prefix, registry, TTL) is None  # up to date
    # The lists expired (TTL passed) while the pointer survived: written again.
    await redis.delete(list_key(prefix, version))
    assert await ensure_fallbacks_in_redis(redis, prefix, registry, TTL) == version
    assert await read_fallback(redis, prefix) == ["t1", "t2", "t3"]
