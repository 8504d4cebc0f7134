"""HTTP routes: ``POST /v1/events``, ``/healthz``, ``/readyz`` and ``/metrics``.

The events route reads the raw body itself (no FastAPI body model) so that each class of bad
input gets its own status code and a batch can be partially accepted; see docs/ingest.md. The
limit on requests in flight sits in front of the app (:mod:`recsys.inflight`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

import orjson
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import ClientDisconnect

from recsys_ingest.batch import check_batch_async
from recsys_ingest.deps import ApiKey, Context
from recsys_ingest.publisher import KafkaUnavailable
from recsys_ingest.schema import BatchResult, Problem

__all__ = ["EVENTS_PATH", "router"]

router = APIRouter()

EVENTS_PATH: Final = "/v1/events"
_JSON: Final = "application/json"

_EXAMPLE_BODY: Final = {
    "events": [
        {
            "event_id": "0b6c8f0e-5d0a-4c36-9d7e-1f0b7c1f2a9d",
            "event_type": "play",
            "user_id": "u42",
            "title_id": "tt0111161",
            "occurred_at": "2024-05-01T12:00:00Z",
            "device": "tv",
            "country": "US",
            "position_sec": 0,
        },
        {
            "event_id": "5f1d7c2e-8a43-4b7e-9d0c-3a2b1c4d5e6f",
            "event_type": "rate",
            "user_id": "u42",
            "title_id": "tt0111161",
            "occurred_at": 1714568400000,
            "device": "tv",
            "country": "US",
            "rating": 5,
        },
    ]
}

_EVENTS_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    202: {"model": BatchResult, "description": "At least one event accepted (Kafka acked it)."},
    400: {"model": Problem, "description": "Not JSON, not an object, no or empty events list."},
    401: {"model": Problem, "description": "Missing or unknown X-API-Key."},
    408: {
        "model": Problem,
        "description": "The body did not arrive within body_timeout_s; the connection is closed.",
    },
    413: {"model": Problem, "description": "Body over max_body_bytes or too many events."},
    415: {"model": Problem, "description": "Content-Type is not application/json."},
    422: {"model": BatchResult, "description": "No event was valid; each one's errors listed."},
    503: {
        "model": Problem,
        "description": "Too many requests in flight, Kafka not keeping up or not acknowledging; "
        "nothing reported accepted. Retry the batch after Retry-After.",
        "headers": {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
        },
    },
}


def _problem(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps({"detail": detail}), status_code=status, media_type=_JSON, headers=headers
    )


def _content_type_problem(value: str | None) -> str | None:
    if value is None:
        return "Content-Type must be application/json"
    media_type, _, params = value.partition(";")
    if media_type.strip().lower() != _JSON:
        return f"Content-Type must be application/json, not {value[:100]!r}"
    for param in params.split(";"):
        name, _, charset = param.partition("=")
        if name.strip().lower() == "charset" and charset.strip().strip('"').lower() != "utf-8":
            return "the only charset accepted is utf-8"
    return None


async def _read_body(request: Request, limit: int, timeout_s: float) -> bytes | Response:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            return _problem(400, "invalid Content-Length")
        if int(declared) > limit:
            return _problem(413, f"body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        # A client that sends its headers and then trickles (or withholds) the body would hold
        # its in-flight slot for ever; the deadline covers the whole body, not each read.
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    return _problem(413, f"body is over the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        # The rest of the body may still be on its way: the connection cannot be reused.
        return _problem(
            408,
            f"the body did not arrive within {timeout_s:g} s ({size} bytes received)",
            headers={"Connection": "close"},
        )
    return b"".join(chunks)


@router.post(
    EVENTS_PATH,
    status_code=202,
    summary="Send a batch of member events",
    description="Validates each event against schema v1 and produces the valid ones to Kafka "
    "(keyed by user_id). Partial acceptance: 202 when at least one event was accepted, "
    "422 when none was valid; every event's outcome is in `results`.",
    response_class=Response,
    responses=_EVENTS_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                _JSON: {
                    "schema": {"$ref": "#/components/schemas/EventBatch"},
                    "example": _EXAMPLE_BODY,
                }
            },
        }
    },
)
async def post_events(request: Request, context: Context, _: ApiKey) -> Response:
    started = time.perf_counter()
    response = await _handle_events(request, context)
    status = str(response.status_code)
    metrics = context.metrics
    metrics.requests.labels(status=status).inc()
    metrics.request_latency.labels(status=status).observe(time.perf_counter() - started)
    return response


async def _handle_events(request: Request, context: Context) -> Response:
    settings, metrics = context.settings, context.metrics
    problem = _content_type_problem(request.headers.get("content-type"))
    if problem is not None:
        return _problem(415, problem)
    try:
        body = await _read_body(request, settings.max_body_bytes, settings.body_timeout_s)
    except ClientDisconnect:
        return _problem(400, "the client went away before sending the whole body")
    if isinstance(body, Response):
        return body
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _problem(400, f"body is not valid JSON: {exc}")
    if not isinstance(document, dict):
        return _problem(400, 'body must be a JSON object like {"events": [...]}')
    events = document.get("events")
    if not isinstance(events, list):
        return _problem(400, 'body must have an "events" list')
    if not events:
        return _problem(400, '"events" is empty; send 1 or more events')
    if len(events) > settings.max_batch_events:
        return _problem(
            413, f"{len(events)} events in one request; the limit is {settings.max_batch_events}"
        )
    metrics.batch_size.observe(len(events))

    checked = await check_batch_async(events, max_event_bytes=settings.max_event_bytes)
    for (event_type, reason), count in checked.rejected_reasons.items():
        metrics.events_rejected.labels(event_type=event_type, reason=reason).inc(count)
    if not checked.records:
        return Response(checked.response_body(), status_code=422, media_type=_JSON)

    produce_started = time.perf_counter()
    try:
        await context.publisher.publish(checked.records)
    except KafkaUnavailable as exc:
        metrics.events_unavailable.labels(reason=exc.reason).inc(checked.accepted)
        return _problem(
            503,
            f"events not accepted, retry the batch later: {exc}",
            headers={"Retry-After": str(settings.retry_after_s)},
        )
    metrics.produce_latency.observe(time.perf_counter() - produce_started)
    for event_type, count in checked.accepted_types.items():
        metrics.events_accepted.labels(event_type=event_type).inc(count)
    return Response(checked.response_body(), status_code=202, media_type=_JSON)


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: Kafka is reachable and the topic exists",
    responses={503: {"description": "Not ready (Kafka unreachable or the topic missing)."}},
)
async def readyz(context: Context) -> Response:
    ready, detail = context.publisher.ready
    body = {"status": "ready" if ready else "unavailable", "detail": detail}
    if not ready:
        return Response(
            orjson.dumps(body),
            status_code=503,
            media_type=_JSON,
            headers={"Retry-After": str(context.settings.retry_after_s)},
        )
    return Response(orjson.dumps(body), media_type=_JSON)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics(context: Context) -> Response:
    return Response(context.metrics.render(), media_type=CONTENT_TYPE_LATEST)
