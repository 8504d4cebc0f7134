"""A stand-in for the ingest API, for testing clients (simulator, importers) without Kafka.

It checks each event against the JSON contract as written in the ingest issue (independently of
the code under test), answers 202 with per-event results, 422 when nothing is valid, and can be
told to answer 503 + Retry-After for its first calls. It is not the ingest service: the
end-to-end tests against the real one live with that service.

    app = create_stub_app(unavailable_first=2)
    transport = httpx.ASGITransport(app=app)

Run it as a server for measurements: ``uvicorn tests.stub_ingest:app --port 18081``.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from recsys.catalog import DEVICES, EVENT_TYPES, ID_PATTERN, ISO_COUNTRIES

__all__ = ["StubState", "app", "contract_problems", "create_stub_app"]

_EARLIEST_MS = int(datetime(1995, 1, 1, tzinfo=UTC).timestamp() * 1000)
_DAY_MS = 86_400_000
_TITLE_TYPES = {"view", "play", "pause", "complete", "rate", "skip"}
_PROGRESS_TYPES = {"pause", "complete", "skip"}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def contract_problems(event: Any, now_ms: int | None = None) -> list[str]:
    """Every rule of the event contract ``event`` breaks; empty when it is valid."""
    if not isinstance(event, dict):
        return ["not an object"]
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    problems: list[str] = []
    try:
        uuid.UUID(str(event.get("event_id")))
    except ValueError:
        problems.append("event_id: not a UUID")
    kind = event.get("event_type")
    if kind not in EVENT_TYPES:
        problems.append(f"event_type: {kind!r} unknown")
    for key in ("user_id",):
        if not isinstance(event.get(key), str) or not ID_PATTERN.match(event[key]):
            problems.append(f"{key}: missing or not an id")
    if event.get("device") not in DEVICES:
        problems.append("device: unknown")
    if event.get("country") not in ISO_COUNTRIES:
        problems.append("country: not ISO alpha-2")
    problems += _time_problems(event.get("occurred_at"), now_ms)
    if kind in _TITLE_TYPES:
        title = event.get("title_id")
        if not isinstance(title, str) or not ID_PATTERN.match(title):
            problems.append("title_id: missing or not an id")
    if kind == "play" and not _number(event.get("position_sec")):
        problems.append("position_sec: missing")
    if kind in _PROGRESS_TYPES:
        for key in ("position_sec", "watched_sec"):
            if not _number(event.get(key)):
                problems.append(f"{key}: missing")
    if kind == "rate":
        rating = event.get("rating")
        if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
            problems.append("rating: must be an integer 1-5")
    if kind == "search":
        query = event.get("query")
        if not isinstance(query, str) or not 1 <= len(query) <= 200:
            problems.append("query: 1-200 characters")
    if kind == "impression":
        ids = event.get("title_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            problems.append("title_ids: 1-100 ids")
        elif not all(isinstance(t, str) and ID_PATTERN.match(t) for t in ids):
            problems.append("title_ids: not ids")
        row = event.get("row")
        if not isinstance(row, str) or not 1 <= len(row) <= 64:
            problems.append("row: 1-64 characters")
        position = event.get("position")
        if not isinstance(position, int) or not 0 <= position <= 1000:
            problems.append("position: 0-1000")
    return problems


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _time_problems(value: Any, now_ms: int) -> list[str]:
    if isinstance(value, bool):
        return ["occurred_at: not a time"]
    if isinstance(value, int):
        at_ms = value
    elif isinstance(value, str) and _RFC3339.match(value):
        try:
            at_ms = int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return ["occurred_at: not a valid date"]
    else:
        return ["occurred_at: missing or not RFC 3339 / epoch ms"]
    if at_ms < _EARLIEST_MS:
        return ["occurred_at: before 1995-01-01"]
    if at_ms > now_ms + _DAY_MS:
        return ["occurred_at: more than 24 h in the future"]
    return []


@dataclass
class StubState:
    calls: int = 0
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    accepted_ids: list[str] = field(default_factory=list)


def create_stub_app(
    *, unavailable_first: int = 0, retry_after: str = "0", api_key: str = "local-dev-key"
) -> FastAPI:
    """The stub; ``app.state.stub`` (a :class:`StubState`) records what it received."""
    stub = FastAPI()
    state = StubState()
    stub.state.stub = state

    @stub.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    @stub.post("/v1/events")
    async def events(request: Request) -> JSONResponse:
        state.calls += 1
        if request.headers.get("X-API-Key") != api_key:
            return JSONResponse({"detail": "bad API key"}, status_code=401)
        if state.calls <= unavailable_first:
            return JSONResponse(
                {"detail": "Kafka unavailable"},
                status_code=503,
                headers={"Retry-After": retry_after},
            )
        body = await request.json()
        batch = body.get("events") if isinstance(body, dict) else None
        if not isinstance(batch, list) or not batch:
            return JSONResponse({"detail": "body must be {'events': [...]}"}, status_code=422)
        state.batches.append(batch)
        results: list[dict[str, Any]] = []
        for index, event in enumerate(batch):
            problems = contract_problems(event)
            event_id = event.get("event_id") if isinstance(event, dict) else None
            if problems:
                # The ingest's shape: errors with a location in the batch and a message.
                errors = [
                    {"loc": f"events[{index}].{p.split(': ', 1)[0]}", "msg": p.split(": ", 1)[-1]}
                    for p in problems
                ]
                results.append(
                    {"index": index, "event_id": event_id, "status": "rejected", "errors": errors}
                )
            else:
                state.accepted_ids.append(str(event_id))
                results.append({"index": index, "event_id": event_id, "status": "accepted"})
        accepted = sum(1 for r in results if r["status"] == "accepted")
        return JSONResponse(
            {"accepted": accepted, "rejected": len(batch) - accepted, "results": results},
            status_code=202 if accepted else 422,
        )

    return stub


app = create_stub_app()
