"""Wait for a dependency at start with exponential backoff, logging what is awaited.

A process started before its stores answer (``make up`` on a slow machine, a pod scheduled before
its StatefulSets) retries instead of crashing:

    cassandra = retry_until("cassandra", lambda: connect_cassandra(settings.cassandra), 300)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    stop_after_delay,
    stop_never,
    wait_exponential,
)

from recsys.log import get_logger

__all__ = ["connect_in_background", "keep_trying", "retry_until"]

log = get_logger(__name__)

T = TypeVar("T")


def _waiting(name: str) -> Callable[[RetryCallState], None]:
    def waiting(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "waiting_for_dependency",
            dependency=name,
            attempt=state.attempt_number,
            error=repr(error),
            retry_in_s=round(state.next_action.sleep, 1) if state.next_action else None,
        )

    return waiting


def retry_until(name: str, attempt: Callable[[], T], timeout_s: float) -> T:
    """``attempt()`` until it returns, backing off up to 10 s; its last error after
    ``timeout_s``."""
    retrying = Retrying(
        wait=wait_exponential(multiplier=0.5, max=10),
        stop=stop_after_delay(timeout_s),
        before_sleep=_waiting(name),
        reraise=True,
    )
    return retrying(attempt)


async def keep_trying(name: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """``await attempt()`` until it returns, backing off up to 10 s, for as long as it takes;
    cancel the task to give up."""
    retrying = AsyncRetrying(
        wait=wait_exponential(multiplier=0.5, max=10),
        stop=stop_never,
        before_sleep=_waiting(name),
        reraise=True,
    )

    async def once() -> T:  # a coroutine function, which AsyncRetrying awaits
        return await attempt()

    return await retrying(once)


async def connect_in_background(name: str, connect: Callable[[], T]) -> T:
    """``connect()`` (blocking, bounded by its own timeout) in a worker thread until it returns,
    as :func:`keep_trying` does."""
    return await keep_trying(name, lambda: asyncio.to_thread(connect))
