"""Wait for a dependency at start with exponential backoff, logging what is awaited.

A process started before its stores answer (``make up`` on a slow machine, a pod scheduled before
its StatefulSets) retries instead of crashing:

    cassandra = retry_until("cassandra", lambda: connect_cassandra(settings.cassandra), 300)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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

__all__ = ["connect_in_background", "retry_until"]

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


async def connect_in_background(name: str, connect: Callable[[], T]) -> T:
    """``connect()`` (blocking, bounded by its own timeout) in a worker thread until it returns,
    backing off up to 10 s, for as long as it takes; cancel the task to give up."""
    retrying = AsyncRetrying(
        wait=wait_exponential(multiplier=0.5, max=10),
        stop=stop_never,
        before_sleep=_waiting(name),
        reraise=True,
    )
    return await retrying(asyncio.to_thread, connect)
