"""A limit on requests in flight to one path, as ASGI middleware in front of FastAPI.

    slots = Slots(limit=64)                 # slots.taken: requests in flight now (a gauge)
    app.add_middleware(InFlightLimit, slots=slots, path_prefix="/v1/events", status=503,
                       detail="...", retry_after_s=5, on_shed=count)

Beyond ``limit`` requests a new one is answered ``status`` with ``Retry-After`` straight from
here: before routing, authentication and dependencies, and without reading its body, so refusing
costs almost nothing while the service is saturated. Other paths (``/healthz``, ``/readyz``,
``/metrics``) are never limited: probes must answer precisely when the service is busy.
uvicorn's own ``limit_concurrency`` is not used: it counts idle keep-alive connections too,
covers the probes and sends no ``Retry-After``.

The ingest service answers 503 (its limit is the server's capacity, and client SDKs resend a 503
batch after ``Retry-After``); the recommendation API answers 429 (what its issue asks, and what
an app's HTTP client backs off from). A slot is held from the request's headers until its
response is sent. ``overloaded`` (optional) refuses the same way while it says so, whatever the
count (the API passes its event-loop lag check).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["InFlightLimit", "Slots"]


@dataclass(slots=True)
class Slots:
    """The limit and how many requests hold a slot now (shared with the metrics)."""

    limit: int
    taken: int = 0


class InFlightLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        slots: Slots,
        path_prefix: str,
        status: int,
        detail: str,
        retry_after_s: int,
        on_shed: Callable[[], None],
        overloaded: Callable[[], bool] = lambda: False,
    ) -> None:
        self.app = app
        self._overloaded = overloaded
        self._slots = slots
        self._prefix = path_prefix
        self._status = status
        self._on_shed = on_shed
        self._body = orjson.dumps({"detail": detail})
        self._headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._body)).encode()),
            (b"retry-after", str(retry_after_s).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self._prefix):
            await self.app(scope, receive, send)
            return
        slots = self._slots
        if slots.taken >= slots.limit or self._overloaded():
            self._on_shed()
            # The unread body is discarded by the server (uvicorn keeps the connection usable).
            await send(
                {"type": "http.response.start", "status": self._status, "headers": self._headers}
            )
            await send({"type": "http.response.body", "body": self._body})
            return
        slots.taken += 1
        try:
            await self.app(scope, receive, send)
        finally:
            slots.taken -= 1
