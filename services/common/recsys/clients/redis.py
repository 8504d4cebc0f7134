"""redis.asyncio factory: one pooled client per process."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from recsys.config import RedisSettings

__all__ = ["redis_client"]


def redis_client(
    settings: RedisSettings,
    *,
    decode_responses: bool = False,
    timeout_s: float | None = None,
    fail_fast: bool = False,
) -> Redis:
    """A pooled client with short timeouts: a slow Redis must fail fast inside a 100 ms budget.

    ``timeout_s`` overrides the socket timeout for clients that are not on a request's path
    (a stream worker's batch writes take longer than a serving read and may wait).
    ``fail_fast`` turns redis-py's own retries off (by default it retries a refused connection
    3 times with 1-10 s backoffs): on a request's path a dead Redis must be an error at once,
    so the caller degrades instead of spending its deadline waiting.
    """
    timeout = settings.socket_timeout_s if timeout_s is None else timeout_s
    client = Redis(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        socket_timeout=timeout,
        socket_connect_timeout=max(timeout, 1.0),
        max_connections=settings.max_connections,
        decode_responses=decode_responses,
        health_check_interval=30,
    )
    if fail_fast:
        client.set_retry(Retry(NoBackoff(), 0))
    return client
