"""Kafka record -> table row. Pure functions: no I/O, the clock is passed in.

Rows are plain dicts shaped like the Arrow schemas in :mod:`.tables`; timestamps are integer
microseconds since the epoch (Iceberg's unit), so no time zone or float rounding is involved.
"""

from __future__ import annotations

from typing import Any, TypedDict

import orjson
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from recsys.events.v1 import events_pb2

__all__ = [
    "EventRow",
    "RejectRow",
    "Rejected",
    "event_id_of",
    "event_row",
    "reject_row",
    "to_micros",
]


class EventRow(TypedDict):
    event_id: str
    event_type: str
    user_id: str
    title_id: str | None
    device: str | None
    country: str | None
    occurred_at: int
    received_at: int | None
    app_version: str | None
    details_kind: str | None
    details: str | None
    kafka_partition: int
    kafka_offset: int
    ingested_at: int


class RejectRow(TypedDict):
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    kafka_timestamp: int | None
    kafka_key: bytes | None
    kafka_value: bytes | None
    error: str
    rejected_at: int


class Rejected(ValueError):
    """The record is not a usable ``Event``; the message says why, for the dead-letter row."""


def to_micros(ts: Timestamp) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1_000


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    # Lower-case names without the prefix ("play", "tv") match the ingest API's vocabulary. A number
    # from a newer schema than ours is kept, not rejected: bronze archives, it does not judge.
    try:
        name: str = enum.Name(value)
    except ValueError:
        return f"unknown_{value}"
    return name.removeprefix(prefix).lower()


def _details(event: events_pb2.Event) -> tuple[str | None, str | None]:
    kind = event.WhichOneof("details")
    if kind is None:
        return None, None
    message: Message = getattr(event, kind)
    # Every declared field, defaults included: position 0.0 is a fact, not a missing value.
    fields: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        fields[field.name] = list(value) if field.is_repeated else value
    return kind, orjson.dumps(fields, option=orjson.OPT_SORT_KEYS).decode()


def _usable_event(value: bytes | None) -> events_pb2.Event:
    if value is None:
        raise Rejected("record has no value")
    try:
        event = events_pb2.Event.FromString(value)
    except DecodeError as exc:
        raise Rejected(f"not a recsys.events.v1.Event: {exc}") from exc
    # Garbage can decode "successfully" as unknown fields; these three are what every consumer of
    # the table relies on (identity, key, partitioning), so their absence marks a malformed record.
    if not event.event_id:
        raise Rejected("event_id is empty")
    if not event.user_id:
        raise Rejected("user_id is empty")
    if not event.HasField("occurred_at"):
        raise Rejected("occurred_at is not set")
    return event


def event_id_of(value: bytes | None) -> str | None:
    """The event_id of a record value, or None when :func:`event_row` would reject it."""
    try:
        return _usable_event(value).event_id
    except Rejected:
        return None


def event_row(value: bytes | None, *, partition: int, offset: int, ingested_at: int) -> EventRow:
    """The bronze row of one record value; raises :class:`Rejected` if it is not a usable Event."""
    event = _usable_event(value)
    kind, details = _details(event)
    return EventRow(
        event_id=event.event_id,
        event_type=_enum_name(events_pb2.EventType, event.event_type, "EVENT_TYPE_"),
        user_id=event.user_id,
        title_id=event.title_id or None,
        device=_enum_name(events_pb2.Device, event.device, "DEVICE_") if event.device else None,
        country=event.country or None,
        occurred_at=to_micros(event.occurred_at),
        received_at=to_micros(event.received_at) if event.HasField("received_at") else None,
        app_version=event.app_version or None,
        details_kind=kind,
        details=details,
        kafka_partition=partition,
        kafka_offset=offset,
        ingested_at=ingested_at,
    )


def reject_row(
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None,
    key: bytes | None,
    value: bytes | None,
    error: str,
    rejected_at: int,
) -> RejectRow:
    return RejectRow(
        kafka_topic=topic,
        kafka_partition=partition,
        kafka_offset=offset,
        kafka_timestamp=timestamp_ms * 1_000
        if timestamp_ms is not None and timestamp_ms >= 0
        else None,
        kafka_key=key,
        kafka_value=value,
        error=error,
        rejected_at=rejected_at,
    )
