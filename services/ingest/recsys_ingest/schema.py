"""The public JSON contract of ``POST /v1/events``, schema v1, as pydantic models.

    result = validate_event(raw_dict, now=time.time())
    if isinstance(result, list): ...      # [FieldError(loc="events[3].rating", msg=...)]
    else: result.event_type, result.user_id, ...

One model per event type, joined by a discriminated union on ``event_type``; a single
:class:`~pydantic.TypeAdapter` validates a parsed JSON object in Rust (pydantic-core). The field
names are the public API for client SDKs: they do not change without a new API version. Unknown
fields are ignored (forward compatibility); the size of an event is capped instead.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from recsys.catalog import DEVICES, EVENT_TYPES, ID_PATTERN, ISO_COUNTRIES
from recsys.event_time import EARLIEST_OCCURRED_AT, MAX_CLOCK_SKEW

__all__ = [
    "EARLIEST_OCCURRED_AT",
    "EVENT_ADAPTER",
    "EVENT_MODELS",
    "MAX_FUTURE_SKEW",
    "UUID_PATTERN",
    "BatchResult",
    "CompleteEvent",
    "ErrorDetail",
    "EventBatch",
    "EventResult",
    "FieldError",
    "ImpressionEvent",
    "IngestEvent",
    "PauseEvent",
    "PlayEvent",
    "Problem",
    "RateEvent",
    "SearchEvent",
    "SkipEvent",
    "ViewEvent",
    "event_loc",
    "validate_event",
]

# From 1995 (MovieLens history is imported through this API) to the clock plus the platform's
# skew bound: a clock minutes ahead is skew, hours ahead would move event time for everyone
# (recsys.event_time).
MAX_FUTURE_SKEW: Final = MAX_CLOCK_SKEW
MAX_POSITION_SEC: Final = 86_400.0  # one day of playback

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EARLIEST_MS: Final = int((EARLIEST_OCCURRED_AT - _EPOCH).total_seconds() * 1000)
_SKEW_S: Final = MAX_FUTURE_SKEW.total_seconds()
_SKEW_MS: Final = int(_SKEW_S * 1000)
_SKEW_TEXT: Final = f"{_SKEW_S / 60:g} minutes"
# RFC 3339 date-time (section 5.6): full-date "T" full-time, with a mandatory offset; "t", "z"
# and a space separator are allowed by the RFC's note.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
UUID_PATTERN: Final = re.compile(_UUID.replace("$", r"\Z"))

# --- field types -------------------------------------------------------------------------------

EventId: TypeAlias = Annotated[
    str,
    StringConstraints(pattern=_UUID, to_lower=True),
    Field(
        description="UUID (any version) in canonical 8-4-4-4-12 hex form, chosen by the client; "
        "the dedup key. Stored in lower case.",
        examples=["0b6c8f0e-5d0a-4c36-9d7e-1f0b7c1f2a9d"],
    ),
]
EntityId: TypeAlias = Annotated[
    str,
    StringConstraints(pattern=ID_PATTERN.pattern),
    Field(
        description="1-64 characters: letters, digits and _ . : - (not first).", examples=["u42"]
    ),
]
ShortText: TypeAlias = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Seconds: TypeAlias = Annotated[
    float,
    Field(ge=0, le=MAX_POSITION_SEC, allow_inf_nan=False, description="Seconds, 0 to 86400."),
]
DeviceName: TypeAlias = Literal["tv", "mobile", "tablet", "web", "console"]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _parse_occurred_at(value: Any) -> datetime:
    """RFC 3339 text or integer epoch milliseconds → an aware datetime in range."""
    if type(value) is int:
        if value < _EARLIEST_MS or value > _now_ms() + _SKEW_MS:
            raise _out_of_range()
        return _EPOCH + timedelta(milliseconds=value)
    if type(value) is str:
        match = _RFC3339.fullmatch(value)
        if match is None:
            raise PydanticCustomError(
                "occurred_at_format",
                "must be an RFC 3339 date-time with an offset, e.g. 2024-05-01T12:00:00Z",
            )
        text = value.upper()
        leap = match.group(1) == "60"
        if leap:  # RFC 3339 allows a leap second; Python's datetime does not
            text = text[:17] + "59" + text[19:]
        fraction = match.group(2)
        if fraction is not None and len(fraction) > 7:  # beyond microseconds: truncate
            text = text[:19] + fraction[:7] + text[19 + len(fraction) :]
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise PydanticCustomError(
                "occurred_at_format", "not a valid date-time: {reason}", {"reason": str(exc)}
            ) from None
        if leap:
            parsed += timedelta(seconds=1)
        if parsed < EARLIEST_OCCURRED_AT or parsed.timestamp() > time.time() + _SKEW_S:
            raise _out_of_range()
        return parsed
    raise PydanticCustomError(
        "occurred_at_type", "must be an RFC 3339 string or integer epoch milliseconds"
    )


def _out_of_range() -> PydanticCustomError:
    return PydanticCustomError(
        "occurred_at_range",
        f"must be between 1995-01-01T00:00:00Z and {_SKEW_TEXT} from now (clock skew bound)",
    )


OccurredAt: TypeAlias = Annotated[
    datetime,
    BeforeValidator(_parse_occurred_at),
    WithJsonSchema(
        {
            "description": "When it happened, by the client's clock: RFC 3339 with an offset, or "
            f"integer epoch milliseconds. From 1995-01-01T00:00:00Z to {_SKEW_TEXT} from now.",
            "oneOf": [
                {"type": "string", "format": "date-time"},
                {"type": "integer", "description": "epoch milliseconds"},
            ],
            "examples": ["2024-05-01T12:00:00Z", 1714564800000],
        }
    ),
]


def _check_country(value: Any) -> str:
    if type(value) is not str:
        raise PydanticCustomError("string_type", "Input should be a valid string")
    if value not in ISO_COUNTRIES:
        raise PydanticCustomError(
            "country_code", "must be an ISO 3166-1 alpha-2 code in upper case, e.g. US"
        )
    return value


CountryCode: TypeAlias = Annotated[
    str,
    BeforeValidator(_check_country),
    WithJsonSchema(
        {
            "type": "string",
            "description": "ISO 3166-1 alpha-2, upper case.",
            "enum": sorted(ISO_COUNTRIES),
            "examples": ["US"],
        }
    ),
]

# --- event models ------------------------------------------------------------------------------


class _Event(BaseModel):
    """Fields every event carries."""

    # strict: no "5" for 5 or 5.0 for a rating; a client bug should surface here, not downstream.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    event_id: EventId
    user_id: EntityId
    occurred_at: OccurredAt
    device: DeviceName
    country: CountryCode
    app_version: ShortText | None = Field(
        default=None, description="Client application version (optional)."
    )


class _TitleEvent(_Event):
    title_id: EntityId


class _PlaybackEvent(_TitleEvent):
    position_sec: Seconds = Field(description="Playback position, seconds from the start.")
    watched_sec: Seconds = Field(description="Seconds actually watched since play started.")


class ViewEvent(_TitleEvent):
    """The member opened a title's page or previewed it."""

    event_type: Literal["view"]
    page: ShortText | None = Field(
        default=None, description="Where the title was seen: home, title_detail, ... (optional)."
    )


class PlayEvent(_TitleEvent):
    """Playback started or resumed."""

    event_type: Literal["play"]
    position_sec: Seconds = Field(description="Where playback started, seconds from the start.")


class PauseEvent(_PlaybackEvent):
    event_type: Literal["pause"]


class CompleteEvent(_PlaybackEvent):
    """Playback reached the end credits."""

    event_type: Literal["complete"]


class SkipEvent(_PlaybackEvent):
    """The member left a title before the end, or skipped a preview or autoplay."""

    event_type: Literal["skip"]


class RateEvent(_TitleEvent):
    event_type: Literal["rate"]
    rating: Annotated[int, Field(ge=1, le=5, description="1 (disliked) to 5 (loved).")]


class SearchEvent(_Event):
    event_type: Literal["search"]
    query: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ImpressionEvent(_Event):
    """A row of titles was shown on screen."""

    event_type: Literal["impression"]
    title_ids: Annotated[
        list[EntityId], Field(min_length=1, max_length=100, description="Left to right.")
    ]
    row: ShortText = Field(description='Row shown, e.g. "top_picks".')
    position: Annotated[int, Field(ge=0, le=1000, description="Row index, 0 at the top.")]
    request_id: EntityId | None = Field(
        default=None, description="The recommendation response that produced the row (optional)."
    )


IngestEvent: TypeAlias = Annotated[
    ViewEvent
    | PlayEvent
    | PauseEvent
    | CompleteEvent
    | RateEvent
    | SearchEvent
    | SkipEvent
    | ImpressionEvent,
    Field(discriminator="event_type"),
]

EVENT_ADAPTER: Final[TypeAdapter[IngestEvent]] = TypeAdapter(IngestEvent)

EVENT_MODELS: Final[dict[str, type[_Event]]] = {
    "view": ViewEvent,
    "play": PlayEvent,
    "pause": PauseEvent,
    "complete": CompleteEvent,
    "rate": RateEvent,
    "search": SearchEvent,
    "skip": SkipEvent,
    "impression": ImpressionEvent,
}
assert tuple(EVENT_MODELS) == EVENT_TYPES, "event models must cover recsys.catalog.EVENT_TYPES"
assert DeviceName.__args__ == DEVICES, "DeviceName must match recsys.catalog.DEVICES"  # type: ignore[attr-defined]

# --- request and response documents (OpenAPI) --------------------------------------------------


class EventBatch(BaseModel):
    """The request body: 1 to max_batch_events events (RECSYS_INGEST__MAX_BATCH_EVENTS)."""

    events: list[IngestEvent] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one event: where (``loc``), what (``msg``) and its kind (for metrics)."""

    loc: str
    msg: str
    kind: str


class ErrorDetail(BaseModel):
    loc: str = Field(description='Path of the offending value, e.g. "events[3].rating".')
    msg: str


class EventResult(BaseModel):
    index: int = Field(description="Position of the event in the request's events list.")
    event_id: str | None = Field(description="The event's id when it was a valid UUID.")
    status: Literal["accepted", "rejected"]
    errors: list[ErrorDetail] | None = Field(default=None, description="Only on rejected events.")


class BatchResult(BaseModel):
    """Outcome of every event of a batch (202: at least one accepted; 422: none)."""

    accepted: int
    rejected: int
    results: list[EventResult]


class Problem(BaseModel):
    """Body of 400, 401, 413, 415 and 503 answers."""

    detail: str


# --- validation --------------------------------------------------------------------------------


_TAG_ERRORS: Final = frozenset({"union_tag_invalid", "union_tag_not_found"})
_NICE_MESSAGES: Final[dict[tuple[str, str], str]] = {
    ("event_id", "string_pattern_mismatch"): "must be a UUID in canonical 8-4-4-4-12 hex form",
    ("event_id", "string_type"): "must be a UUID string",
}
_EVENT_TYPES_TEXT: Final = ", ".join(EVENT_TYPES)


def event_loc(index: int, loc: tuple[str | int, ...] = ()) -> str:
    """``events[3].title_ids[2]`` for index 3 and loc ``("title_ids", 2)``."""
    out = [f"events[{index}]"]
    for part in loc:
        out.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(out)


def validate_event(raw: object, index: int) -> IngestEvent | list[FieldError]:
    """The validated event, or every problem with it (each with its ``loc`` in the request)."""
    try:
        return EVENT_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        return _field_errors(exc, raw, index)


def _field_errors(exc: ValidationError, raw: object, index: int) -> list[FieldError]:
    errors: list[FieldError] = []
    tag = raw.get("event_type") if isinstance(raw, dict) else None
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        kind, loc = error["type"], error["loc"]
        if kind in _TAG_ERRORS:
            msg = (
                "Field required"
                if kind == "union_tag_not_found"
                else f"must be one of {_EVENT_TYPES_TEXT}"
            )
            errors.append(FieldError(event_loc(index, ("event_type",)), msg, kind))
            continue
        if kind == "model_attributes_type" or (kind == "dict_type" and not loc):
            errors.append(FieldError(event_loc(index), "must be a JSON object", "object_type"))
            continue
        # A tagged union puts the matched tag first in the path: ("rate", "rating").
        if loc and loc[0] == tag and isinstance(tag, str) and tag in EVENT_MODELS:
            loc = loc[1:]
        field = str(loc[0]) if loc else ""
        msg = _NICE_MESSAGES.get((field, kind), error["msg"])
        errors.append(FieldError(event_loc(index, loc), msg, kind))
    return errors


def json_schema_components() -> dict[str, Any]:
    """The request body's JSON schema and its definitions, for the OpenAPI document."""
    schema = TypeAdapter(EventBatch).json_schema(ref_template="#/components/schemas/{model}")
    defs: dict[str, Any] = schema.pop("$defs", {})
    defs["EventBatch"] = schema
    return defs
