"""FastAPI dependencies: what a route needs, read from the app built by :func:`create_app`.

Routes declare what they need as annotated types (``context: Context``, ``_: ApiKey``); tests
swap the objects behind them by building the app with their own (``create_app(settings,
publisher=...)``) or with ``app.dependency_overrides[get_context]``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from recsys.config import IngestSettings
from recsys_ingest.metrics import IngestMetrics
from recsys_ingest.publisher import EventPublisher

__all__ = ["ApiKey", "Context", "IngestContext", "require_api_key"]

API_KEY_HEADER = "X-API-Key"


@dataclass(frozen=True, slots=True)
class IngestContext:
    """Everything the routes use, built once per app (``app.state.ingest``)."""

    settings: IngestSettings
    api_keys: tuple[bytes, ...]
    publisher: EventPublisher
    metrics: IngestMetrics


# Dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker
# thread, a thread hop per dependency per request.


async def get_context(request: Request) -> IngestContext:
    context: IngestContext = request.app.state.ingest
    return context


Context = Annotated[IngestContext, Depends(get_context)]


_api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="One of the keys in RECSYS_INGEST__API_KEYS (comma-separated); "
    "local default: local-dev-key.",
)


async def require_api_key(
    context: Context, key: Annotated[str | None, Security(_api_key_header)]
) -> str:
    """401 unless ``X-API-Key`` is one of the configured keys (compared in constant time)."""
    given = (key or "").encode()
    if not given or not any(hmac.compare_digest(given, k) for k in context.api_keys):
        context.metrics.requests.labels(status="401").inc()
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=f"missing or unknown API key in the {API_KEY_HEADER} header",
        )
    return key or ""


ApiKey = Annotated[str, Depends(require_api_key)]
