"""redis.asyncio factory: one pooled client per process."""

from __future__ import annotations

from redis.asyncio import Redis

from recsys.config import RedisSettings

__all__ = ["redis_client"]


def redis_client(
    settings: RedisSettings, *, decode_responses: bool = False, timeout_s: float | None = None
) -> Redis:
    """A pooled client with short timeouts: a slow Redis must fail fast inside a 100 ms budget.

    ``timeout_s`` overrides the socket timeout for clients that are not on a request's path
    (a stream worker's batch writes take longer than a serving read and may wait).
    """
    timeout = settings.socket_timeout_s if timeout_s is None else timeout_s
    return Redis(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        socket_timeout=timeout,
        socket_connect_timeout=max(timeout, 1.0),
        max_connections=settings.max_connections,
        decode_responses=decode_responses,
        health_check_interval=30,
    )
