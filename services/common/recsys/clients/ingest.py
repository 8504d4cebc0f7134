"""An async client of the ingest API, as a client SDK would use it.

    async with IngestClient(settings.ingest.url, api_key="local-dev-key") as client:
        outcome = await client.send([{"event_id": ..., "event_type": "play", ...}])
        outcome.accepted, outcome.rejected, outcome.status

A 503 (Kafka unavailable) is retried after the server's Retry-After, and connection errors with
exponential backoff, until ``max_wait_s`` has passed; other answers come back as they are.
Resending a batch is safe: the stream job drops repeated event_ids.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

__all__ = ["BatchOutcome", "IngestClient", "IngestUnavailable"]

EVENTS_PATH = "/v1/events"


class IngestUnavailable(RuntimeError):
    """The service answered 503 (or could not be reached) until the retry budget ran out."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    status: int
    accepted: int
    rejected: int
    latency_s: float  # of the final attempt
    attempts: int
    body: dict[str, Any] = field(default_factory=dict)


class IngestClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        timeout_s: float = 10.0,
        max_wait_s: float = 60.0,
        max_connections: int = 64,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # ``transport`` lets tests (and in-process callers) route requests to an ASGI app or a
        # MockTransport instead of the network; None means httpx's own connection pool.
        self._http = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            headers={"X-API-Key": api_key, "Content-Type": "application/json"},
            timeout=timeout_s,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )
        self._max_wait_s = max_wait_s

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, events: Sequence[Mapping[str, Any]]) -> BatchOutcome:
        """POST one batch; retries only what is safe and useful to retry (503, no connection)."""
        body = orjson.dumps({"events": list(events)})
        attempts = 0
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((IngestUnavailable, httpx.TransportError)),
            stop=stop_after_delay(self._max_wait_s),
            wait=_wait_retry_after,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                attempts += 1
                t0 = time.perf_counter()
                response = await self._http.post(EVENTS_PATH, content=body)
                latency = time.perf_counter() - t0
                if response.status_code == 503:
                    raise IngestUnavailable(
                        f"ingest unavailable: {response.text[:200]}",
                        _retry_after(response),
                    )
        payload = _json(response)
        return BatchOutcome(
            status=response.status_code,
            accepted=int(payload.get("accepted", 0)),
            rejected=int(
                payload.get("rejected", len(events) if response.status_code >= 400 else 0)
            ),
            latency_s=latency,
            attempts=attempts,
            body=payload,
        )


_backoff = wait_exponential_jitter(multiplier=0.2, max=5.0)


def _wait_retry_after(state: RetryCallState) -> float:
    """Honour the server's Retry-After; back off exponentially when there is none."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, IngestUnavailable) and exc.retry_after_s is not None:
        return exc.retry_after_s
    return float(_backoff(state))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {"detail": response.text[:500]}
    return payload if isinstance(payload, dict) else {"detail": payload}
