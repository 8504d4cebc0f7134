"""Pipelined round trip on the real Redis, in the documented key layout."""

from __future__ import annotations

from redis.asyncio import Redis

from recsys.config import Settings


async def test_pipeline_writes_and_reads_a_feature_hash(
    redis: Redis, infra: Settings, unique: str
) -> None:
    users = [f"u{unique}{i}" for i in range(50)]
    keys = [f"{infra.redis.key_prefix}:test:user:{u}" for u in users]
    try:
        async with redis.pipeline(transaction=True) as pipe:
            for i, key in enumerate(keys):
                pipe.hset(
                    key, mapping={"session_duration_sec": str(i), "current_device_type": "tv"}
                )
                pipe.expire(key, 60)
            results = await pipe.execute()
        assert len(results) == 100

        # One round trip back for all fifty members.
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
                pipe.ttl(key)
            replies = await pipe.execute()
        hashes, ttls = replies[0::2], replies[1::2]
        assert [int(h[b"session_duration_sec"]) for h in hashes] == list(range(50))
        assert {h[b"current_device_type"] for h in hashes} == {b"tv"}
        assert all(0 < t <= 60 for t in ttls)
    finally:
        await redis.delete(*keys)
    assert await redis.exists(*keys) == 0
