"""One circuit breaker per dependency (the ``circuitbreaker`` library), and what counts as failed.

    breaker = Breaker("ranker", failures=5, recovery_s=2.0)
    if breaker.allows():
        with breaker.guard():             # a failure below counts; a success closes it
            reply = await stub.Rank(request, timeout=t)

After ``failures`` consecutive failed calls the breaker opens: for ``recovery_s`` the API skips
the dependency without calling it (the request steps down the ladder at once instead of spending
its budget on a timeout). Then it is half open: calls try again, the first success closes it,
a failure opens it for another ``recovery_s``.

A failure is a transport or server error: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
INTERNAL, a timeout, a refused connection. An answer that says the request was wrong
(INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, OUT_OF_RANGE) proves the dependency is up.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Final

import grpc
from circuitbreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, CircuitBreaker

__all__ = ["STATE_VALUES", "Breaker", "is_failure"]

# The gauge's values: recsys_api_breaker_state.
STATE_VALUES: Final = {STATE_CLOSED: 0.0, STATE_HALF_OPEN: 1.0, STATE_OPEN: 2.0}

_ANSWERED: Final = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)


def is_failure(_: type[BaseException], exc: BaseException) -> bool:
    """Whether ``exc`` says the dependency is unwell (the breaker counts it)."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code() not in _ANSWERED
    return isinstance(exc, Exception)


class Breaker:
    def __init__(self, name: str, *, failures: int, recovery_s: float) -> None:
        self.name = name
        self._breaker = CircuitBreaker(
            failure_threshold=failures,
            recovery_timeout=recovery_s,
            expected_exception=is_failure,
            name=name,
        )

    def allows(self) -> bool:
        """False while open: skip the dependency."""
        return not self._breaker.opened

    def guard(self) -> AbstractContextManager[None]:
        """Records the outcome of the call made inside it."""
        return self._breaker  # type: ignore[no-any-return]

    @property
    def state(self) -> str:
        """``closed``, ``half_open`` or ``open``."""
        return str(self._breaker.state)

    @property
    def value(self) -> float:
        return STATE_VALUES[self.state]
