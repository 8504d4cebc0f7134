"""HTTP routes: ``GET /v1/recommendations/{user_id}``, the web page, ``/healthz``, ``/readyz``
and ``/metrics``. The limit on requests in flight sits in front of the app (recsys.inflight)."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Final

import httpx
import orjson
from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel

from recsys.catalog import DEVICES, ISO_COUNTRIES, id_problem
from recsys.clients.ingest import IngestUnavailable
from recsys.log import get_logger
from recsys_api.deps import Context
from recsys_api.metrics import (
    ANSWERED_BY_LEVEL,
    DEGRADATIONS_BY_REASON,
    LATENCY_BY_LEVEL,
    LATENCY_BY_STAGE,
    REQUESTS,
)
from recsys_api.page import PAGE
from recsys_api.recommend import Ask
from recsys_api.schema import Problem, Recommendations, answer, server_timing

__all__ = ["RECOMMENDATIONS_PATH", "router"]

log = get_logger(__name__)

router = APIRouter()

RECOMMENDATIONS_PATH: Final = "/v1/recommendations/"
_JSON: Final = "application/json"

_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "model": Recommendations,
        "description": "Always, whatever failed behind: `level` and `why` say what was served.",
        "headers": {"Server-Timing": {"description": "Per stage and total, in ms."}},
    },
    400: {
        "model": Problem,
        "description": "Malformed user id, k out of range, unknown country or device.",
    },
    422: {"description": "A query parameter of the wrong type (k not an integer)."},
    429: {
        "model": Problem,
        "description": "max_in_flight requests are being handled; retry after Retry-After.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
    503: {"model": Problem, "description": "Starting: the title table is not loaded yet."},
}


def _problem(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    REQUESTS.labels(status=str(status), level="none").inc()
    return Response(
        orjson.dumps({"detail": detail}), status_code=status, media_type=_JSON, headers=headers
    )


def _checked(
    context: Context, user_id: str, k: int | None, country: str | None, device: str | None
) -> Ask | str:
    """The request, or what is wrong with it."""
    api = context.settings
    problem = id_problem(user_id, "user id")
    if problem is not None:
        return problem
    k = api.default_k if k is None else k
    if not 1 <= k <= api.max_k:
        return f"k is {k}; ask for 1 to {api.max_k} items"
    country = api.default_country if country is None else country
    if country not in ISO_COUNTRIES:
        return f"country {country!r} is not an ISO 3166-1 alpha-2 code we know (e.g. US, GB)"
    device = api.default_device if device is None else device
    if device not in DEVICES:
        return f"device {device!r} is not one of {', '.join(DEVICES)}"
    return Ask(user_id=user_id, k=k, country=country, device=device)


@router.get(
    RECOMMENDATIONS_PATH + "{user_id}",
    summary="A member's recommendations",
    description="Assignment and features in parallel, then candidates, ranking and "
    "post-ranking, within the budget (100 ms); a failing dependency steps the answer down the "
    "degradation ladder instead of failing it (docs/api.md).",
    responses=_RESPONSES,
    response_class=Response,
)
async def recommendations(
    context: Context,
    user_id: str,
    k: Annotated[int | None, Query(description="Items wanted (default 10, at most max_k).")] = None,
    country: Annotated[str | None, Query(description="ISO 3166-1 alpha-2 (default US).")] = None,
    device: Annotated[str | None, Query(description="tv, mobile, tablet, web, console.")] = None,
) -> Response:
    started = time.perf_counter()
    ask = _checked(context, user_id, k, country, device)
    if isinstance(ask, str):
        return _problem(400, ask)
    if not context.ready:
        return _problem(
            503,
            "starting: the title table is loading and the dependencies connecting",
            {"Retry-After": "1"},
        )
    try:
        result = await context.recommender.recommend(ask, started)
    except Exception as exc:  # a bug, not a dependency: still an answer, at the last level
        log.exception("recommendation failed; emergency list served", user_id=ask.user_id)
        result = context.recommender.after_error(ask, exc)
    total_ms = (time.perf_counter() - started) * 1000
    result.served.latency_ms = round(total_ms, 3)
    context.served_log.record(result.served)
    ANSWERED_BY_LEVEL[result.level].inc()
    LATENCY_BY_LEVEL[result.level].observe(total_ms / 1000)
    for stage, ms in result.timings_ms.items():
        LATENCY_BY_STAGE[stage].observe(ms / 1000)
    for step in result.steps.steps:
        DEGRADATIONS_BY_REASON[step.reason].inc()
    return Response(
        orjson.dumps(answer(result, total_ms)),
        media_type=_JSON,
        headers={"Server-Timing": server_timing(result.timings_ms, total_ms)},
    )


class Play(BaseModel):
    user_id: str
    title_id: str
    country: str = "US"
    device: str = "tv"


@router.post(
    "/v1/demo/plays",
    summary="The web page's play button: one play event, forwarded to the ingest API",
    description="Answers what the ingest API answered (202 when accepted; its 4xx with the "
    "reason otherwise; 503 when it cannot be reached).",
)
async def demo_play(play: Play, context: Context) -> Response:
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "play",
        "user_id": play.user_id,
        "title_id": play.title_id,
        "occurred_at": time.time_ns() // 1_000_000,
        "device": play.device,
        "country": play.country,
        "position_sec": 0,
    }
    try:
        outcome = await context.ingest.send([event])
    except (IngestUnavailable, httpx.HTTPError) as exc:
        return Response(
            orjson.dumps({"detail": f"the ingest API is unavailable: {exc}"}),
            status_code=503,
            media_type=_JSON,
        )
    return Response(orjson.dumps(outcome.body), status_code=outcome.status, media_type=_JSON)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(PAGE)


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the title table is loaded (every dependency may still be down: the "
    "ladder answers)",
    responses={503: {"description": "Not ready yet; the body says what is missing."}},
)
async def readyz(context: Context) -> Response:
    body = {
        "ready": context.ready,
        "versions": context.catalog.versions,
        "breakers": {name: b.state for name, b in context.backends.breakers.items()},
        "targets": context.backends.targets,
        "served_log": {
            "kafka_connected": context.served_log.connected,
            "queued": context.served_log.queued,
        },
    }
    return Response(orjson.dumps(body), status_code=200 if body["ready"] else 503, media_type=_JSON)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
