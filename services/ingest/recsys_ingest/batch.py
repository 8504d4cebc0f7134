"""One request's events, checked one by one: the records to produce and every event's outcome.

    checked = check_batch(parsed["events"], max_event_bytes=8192)
    await publisher.publish(checked.records)          # only the valid events
    checked.response_body()                           # {"accepted": ..., "results": [...]}

Partial acceptance: a valid event is produced even when others in its batch are not; each
rejected event is reported with the path and reason of every problem.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from recsys_ingest.convert import timestamp_now, to_record
from recsys_ingest.schema import (
    EVENT_MODELS,
    UUID_PATTERN,
    FieldError,
    event_loc,
    validate_event,
)

__all__ = ["CheckedBatch", "check_batch"]

_UNKNOWN_TYPE: Final = "unknown"


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
    records, results = checked.records, checked.results
    received_at = timestamp_now()
    for index, raw in enumerate(events):
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
    return checked


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
