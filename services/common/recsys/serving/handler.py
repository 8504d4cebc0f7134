"""The wrapper every serving method goes through: deadline, errors, latency and status metrics.

    class Servicer(ranker_pb2_grpc.RankerServiceServicer):
        @rpc("ranker", "Rank")
        async def Rank(self, request, context):
            deadline = Deadline(context)
            ...
            deadline.check("inference")      # DEADLINE_EXCEEDED if the caller's time is up

A handler raises :class:`~recsys.serving.errors.RpcError` for a bad request; anything else is
logged and answered INTERNAL with the exception's class, never a traceback to the caller.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from prometheus_client import Counter

from recsys.log import get_logger
from recsys.serving.errors import RpcError, deadline_exceeded
from recsys.serving.metrics import HANDLED, HANDLING

__all__ = ["SERVER_TIME_KEY", "Deadline", "rpc"]

# Trailing metadata of every successful call: the handler's time in milliseconds.
SERVER_TIME_KEY = "x-server-time-ms"

log = get_logger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Handler = Callable[[Any, Req, grpc.aio.ServicerContext], Awaitable[Resp]]


class Deadline:
    """The caller's deadline as the handler sees it; ``None`` remaining means no deadline."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        remaining = context.time_remaining()
        self._at = None if remaining is None else time.monotonic() + remaining

    def remaining_s(self) -> float | None:
        return None if self._at is None else self._at - time.monotonic()

    def check(self, before: str) -> None:
        """DEADLINE_EXCEEDED when the caller's time ran out before ``before`` could start."""
        left = self.remaining_s()
        if left is not None and left <= 0:
            raise deadline_exceeded(f"the caller's deadline passed before {before}")

    def timeout(self, cap_s: float) -> float:
        """How long one store call may take: the time left, at most ``cap_s``."""
        left = self.remaining_s()
        return cap_s if left is None else max(0.0, min(cap_s, left))


class _Cost:
    """How long a method takes: the median of its last successful calls. A call given less
    time than that is refused at once. A median, not a mean: one slow call (the first, a
    pinned version's load, a store timeout) must not lock out the callers with short deadlines."""

    def __init__(self, window: int = 64) -> None:
        self._recent: deque[float] = deque(maxlen=window)
        self.seconds = 0.0

    def add(self, seconds: float) -> None:
        self._recent.append(seconds)
        self.seconds = statistics.median(self._recent)


def rpc(service: str, method: str) -> Callable[[Handler[Req, Resp]], Handler[Req, Resp]]:
    """Wrap a servicer method: fail fast on a deadline it cannot meet, map errors, record
    metrics."""
    seconds = HANDLING.labels(service=service, method=method)
    cost = _Cost()
    handled: dict[str, Counter] = {}  # per status code, bound on first use

    def count(code: Any) -> None:
        name = _name(code)
        counter = handled.get(name)
        if counter is None:
            counter = handled[name] = HANDLED.labels(service=service, method=method, code=name)
        counter.inc()

    def wrap(handler: Handler[Req, Resp]) -> Handler[Req, Resp]:
        @functools.wraps(handler)
        async def wrapper(self: Any, request: Req, context: grpc.aio.ServicerContext) -> Resp:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                remaining = context.time_remaining()
                if remaining is not None and remaining < cost.seconds:
                    raise deadline_exceeded(
                        f"{method} takes about {cost.seconds * 1000:.2f} ms and the caller's "
                        f"deadline leaves {max(remaining, 0) * 1000:.2f} ms"
                    )
                response = await handler(self, request, context)
                elapsed = time.perf_counter() - started
                cost.add(elapsed)
                # The server's own time, for callers that separate it from the network's (the
                # API's Server-Timing header, `make bench-serving`).
                context.set_trailing_metadata(((SERVER_TIME_KEY, f"{elapsed * 1000:.3f}"),))
                return response
            except RpcError as exc:
                code = exc.code
                await context.abort(exc.code, exc.message)
                raise  # unreachable: abort raises
            except asyncio.CancelledError:  # the caller went away or its deadline passed
                code = grpc.StatusCode.CANCELLED
                raise
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception as exc:
                code = grpc.StatusCode.INTERNAL
                log.exception("call failed", service=service, method=method)
                await context.abort(code, f"{method} failed: {type(exc).__name__}")
                raise  # unreachable: abort raises
            finally:
                seconds.observe(time.perf_counter() - started)
                count(code)

        return wrapper

    return wrap


def _name(code: Any) -> str:
    return code.name if isinstance(code, grpc.StatusCode) else str(code)
