"""redis.asyncio factory: one pooled client per process."""

from __future__ import annotations

from redis.asyncio import Redis

from recsys.config import RedisSettings

__all__ = ["redis_client"]


def redis_client(settings: RedisSettings, *, decode_responses: bool = False) -> Redis:
    """A pooled client with short timeouts: a slow Redis must fail fast inside a 100 ms budget."""
    return Redis(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        socket_timeout=settings.socket_timeout_s,
        socket_connect_timeout=max(settings.socket_timeout_s, 1.0),
        max_connections=settings.max_connections,
        decode_responses=decode_responses,
        health_check_interval=30,
    )
