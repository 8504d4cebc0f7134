"""A limit on ``POST /v1/events`` requests in flight, as ASGI middleware in front of FastAPI.

    slots = Slots(limit=64)                 # slots.taken: requests in flight now (a gauge)
    app.add_middleware(InFlightLimit, slots=slots, retry_after_s=5, on_shed=count)

Beyond ``limit`` requests a new one is answered 503 with ``Retry-After`` straight from here:
before routing, authentication and dependencies, and without reading its body, so refusing costs
almost nothing while the service is saturated. Other paths (``/healthz``, ``/readyz``,
``/metrics``) are never limited: probes must answer precisely when the service is busy.

503, not 429: the limit is the server's capacity, shared by every client, not a quota a client
exceeded (RFC 9110 15.6.4 vs RFC 6585 4), and client SDKs already resend a 503 batch after
``Retry-After``. uvicorn's own ``limit_concurrency`` is not used: it counts idle keep-alive
connections too, covers the probes and sends no ``Retry-After``.

A slot is held from the request's headers until its response is sent: while the body arrives
(bounded by ``body_timeout_s`` in the route), while it is validated and until Kafka acknowledged
it (bounded by ``produce_timeout_s``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["EVENTS_PATH", "InFlightLimit", "Slots"]

EVENTS_PATH: Final = "/v1/events"


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
        retry_after_s: int,
        on_shed: Callable[[], None],
        path: str = EVENTS_PATH,
    ) -> None:
        self.app = app
        self._slots = slots
        self._path = path
        self._on_shed = on_shed
        self._body = orjson.dumps(
            {
                "detail": f"the service has {slots.limit} requests in flight, its limit; "
                "nothing was read or accepted, retry the batch later"
            }
        )
        self._headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._body)).encode()),
            (b"retry-after", str(retry_after_s).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self._path:
            await self.app(scope, receive, send)
            return
        slots = self._slots
        if slots.taken >= slots.limit:
            self._on_shed()
            # The unread body is discarded by the server (uvicorn keeps the connection usable).
            await send({"type": "http.response.start", "status": 503, "headers": self._headers})
            await send({"type": "http.response.body", "body": self._body})
            return
        slots.taken += 1
        try:
            await self.app(scope, receive, send)
        finally:
            slots.taken -= 1
