"""One request's events, checked one by one: the records to produce and every event's outcome.

    checked = await check_batch_async(parsed["events"], max_event_bytes=8192)
    await publisher.publish(checked.records)          # only the valid events
    checked.response_body()                           # {"accepted": ..., "results": [...]}

Partial acceptance: a valid event is produced even when others in its batch are not; each
rejected event is reported with the path and reason of every problem.

Checking costs 14-19 µs of CPU per event on the development machine (validation, protobuf, the
size check): checked in one go, a 500-event batch keeps the event loop from everything else for
7-10 ms, and under uvloop a 0.5 ms timer then fired up to 17-23 ms late. ``check_batch_async``
yields to the loop every :data:`VALIDATION_CHUNK` events instead: the timer fired at most
1.3-2.1 ms late, at no measurable extra CPU. A worker thread was worse here: the work holds the
GIL (pydantic-core and protobuf build Python objects), so a batch cost 11.5-13.6 ms of CPU and the
loop still waited up to 9-10 ms for the GIL. ``make bench-ingest`` prints these figures first.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from recsys_ingest.convert import timestamp_now, to_record
from recsys_ingest.schema import (
    EVENT_MODELS,
    UUID_PATTERN,
    FieldError,
    event_loc,
    validate_event,
)

__all__ = ["VALIDATION_CHUNK", "CheckedBatch", "check_batch", "check_batch_async"]

_UNKNOWN_TYPE: Final = "unknown"
# Events checked between two yields to the event loop: about 0.5 ms of CPU on the development
# machine. With 64 the loop waited up to 2.8-8.9 ms, with 128 up to 4.5-6 ms (make bench-ingest).
VALIDATION_CHUNK: Final = 32


@dataclass(slots=True)
class CheckedBatch:
    # (key, value) Kafka records of the valid events, in request order.
    records: list[tuple[bytes, bytes]] = field(default_factory=list)
    # One entry per event, in request order (the response's "results").
    results: list[dict[str, Any]] = field(default_factory=list)
    accepted_types: Counter[str] = field(default_factory=Counter)
    # (event_type, reason) → count; reason is the first problem's kind, e.g. "missing".
    rejected_reasons: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def accepted(self) -> int:
        return len(self.records)

    @property
    def rejected(self) -> int:
        return len(self.results) - len(self.records)

    def response_body(self) -> bytes:
        return orjson.dumps(
            {"accepted": self.accepted, "rejected": self.rejected, "results": self.results}
        )


def check_batch(events: list[Any], *, max_event_bytes: int) -> CheckedBatch:
    """Validate and convert every event of a parsed ``events`` list (already 1..N items)."""
    checked = CheckedBatch()
    _check_range(checked, events, range(len(events)), max_event_bytes, timestamp_now())
    return checked


async def check_batch_async(
    events: list[Any], *, max_event_bytes: int, chunk: int = VALIDATION_CHUNK
) -> CheckedBatch:
    """:func:`check_batch`, yielding to the event loop after every ``chunk`` events."""
    checked = CheckedBatch()
    received_at = timestamp_now()
    for start in range(0, len(events), chunk):
        if start:
            await asyncio.sleep(0)
        stop = min(start + chunk, len(events))
        _check_range(checked, events, range(start, stop), max_event_bytes, received_at)
    return checked


def _check_range(
    checked: CheckedBatch,
    events: list[Any],
    indices: range,
    max_event_bytes: int,
    received_at: Timestamp,
) -> None:
    records, results = checked.records, checked.results
    for index in indices:
        raw = events[index]
        problem = _size_problem(raw, index, max_event_bytes)
        if problem is not None:
            _reject(checked, index, raw, [problem])
            continue
        outcome = validate_event(raw, index)
        if isinstance(outcome, list):
            _reject(checked, index, raw, outcome)
            continue
        records.append(to_record(outcome, received_at))
        results.append({"index": index, "event_id": outcome.event_id, "status": "accepted"})
        checked.accepted_types[outcome.event_type] += 1


def _size_problem(raw: Any, index: int, limit: int) -> FieldError | None:
    """An event's size is that of its compact JSON (orjson): the client's own spacing is free."""
    try:
        size = len(orjson.dumps(raw))
    except orjson.JSONEncodeError:  # nested deeper than orjson writes (254 levels)
        return FieldError(event_loc(index), "nested too deeply", "event_too_deep")
    if size > limit:
        return FieldError(
            event_loc(index),
            f"event is {size} bytes as JSON; the limit is {limit}",
            "event_too_large",
        )
    return None


def _reject(
    checked: CheckedBatch,
    index: int,
    raw: Any,
    errors: list[FieldError],
) -> None:
    event_type = _UNKNOWN_TYPE
    event_id = None
    if isinstance(raw, dict):
        tag = raw.get("event_type")
        if isinstance(tag, str) and tag in EVENT_MODELS:
            event_type = tag
        # Echo the client's id only when it is one (never an arbitrary blob back).
        candidate = raw.get("event_id")
        if isinstance(candidate, str) and UUID_PATTERN.fullmatch(candidate):
            event_id = candidate.lower()
    checked.results.append(
        {
            "index": index,
            "event_id": event_id,
            "status": "rejected",
            "errors": [{"loc": e.loc, "msg": e.msg} for e in errors],
        }
    )
    checked.rejected_reasons[(event_type, errors[0].kind)] += 1
