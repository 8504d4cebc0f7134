"""Validated JSON events → ``recsys.events.v1.Event`` protobuf records, and back for inspection.

    received_at = timestamp_now()
    key, value = to_record(event, received_at)      # key: user_id (UTF-8), value: Event bytes

``event_type`` → ``EventType``, ``device`` → ``Device``, the type's own fields → the ``details``
oneof case of the same name, ``occurred_at`` → ``Timestamp`` (microsecond precision),
``received_at`` = the server's clock when the request was accepted.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

from google.protobuf.timestamp_pb2 import Timestamp

from recsys.catalog import DEVICES, EVENT_TYPES
from recsys.events.v1 import events_pb2
from recsys_ingest.schema import (
    EVENT_MODELS,
    CompleteEvent,
    ImpressionEvent,
    IngestEvent,
    PauseEvent,
    PlayEvent,
    RateEvent,
    SearchEvent,
    SkipEvent,
    ViewEvent,
)

__all__ = ["from_proto", "timestamp_now", "to_proto", "to_record"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)

EVENT_TYPE_VALUE: Final[dict[str, int]] = {
    name: events_pb2.EventType.Value(f"EVENT_TYPE_{name.upper()}") for name in EVENT_TYPES
}
DEVICE_VALUE: Final[dict[str, int]] = {
    name: events_pb2.Device.Value(f"DEVICE_{name.upper()}") for name in DEVICES
}
_EVENT_TYPE_NAME: Final = {v: k for k, v in EVENT_TYPE_VALUE.items()}
_DEVICE_NAME: Final = {v: k for k, v in DEVICE_VALUE.items()}


def timestamp_now() -> Timestamp:
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    return Timestamp(seconds=seconds, nanos=nanos)


def _fill_details(message: events_pb2.Event, event: IngestEvent) -> None:
    """Set the ``details`` oneof case named like the event type (and title_id where it applies)."""
    match event:
        case PlayEvent():
            message.title_id = event.title_id
            message.play.position_sec = event.position_sec
        case PauseEvent() | CompleteEvent() | SkipEvent():
            message.title_id = event.title_id
            details = getattr(message, event.event_type)
            details.position_sec = event.position_sec
            details.watched_sec = event.watched_sec
        case ViewEvent():
            message.title_id = event.title_id
            message.view.page = event.page or ""
        case RateEvent():
            message.title_id = event.title_id
            message.rate.rating = event.rating
        case SearchEvent():
            message.search.query = event.query
        case ImpressionEvent():
            impression = message.impression
            impression.title_ids.extend(event.title_ids)
            impression.row = event.row
            impression.position = event.position
            impression.request_id = event.request_id or ""


def to_proto(event: IngestEvent, received_at: Timestamp) -> events_pb2.Event:
    message = events_pb2.Event(
        event_id=event.event_id,
        event_type=EVENT_TYPE_VALUE[event.event_type],  # type: ignore[arg-type]
        user_id=event.user_id,
        device=DEVICE_VALUE[event.device],  # type: ignore[arg-type]
        country=event.country,
        app_version=event.app_version or "",
    )
    seconds, micros = divmod((event.occurred_at - _EPOCH) // _MICROSECOND, 1_000_000)
    message.occurred_at.seconds = seconds
    message.occurred_at.nanos = micros * 1000
    message.received_at.CopyFrom(received_at)
    _fill_details(message, event)
    return message


def to_record(event: IngestEvent, received_at: Timestamp) -> tuple[bytes, bytes]:
    """The Kafka record for one event: key ``user_id`` (per-member order), value the protobuf."""
    return event.user_id.encode(), to_proto(event, received_at).SerializeToString()


def from_proto(message: events_pb2.Event) -> IngestEvent:
    """The JSON-contract model an ``Event`` record was made from (for tests and tools)."""
    event_type = _EVENT_TYPE_NAME[message.event_type]
    occurred = message.occurred_at
    fields: dict[str, Any] = {
        "event_id": message.event_id,
        "event_type": event_type,
        "user_id": message.user_id,
        "device": _DEVICE_NAME[message.device],
        "country": message.country,
        "occurred_at": _EPOCH
        + timedelta(seconds=occurred.seconds, microseconds=occurred.nanos // 1000),
        "app_version": message.app_version or None,
    }
    if event_type not in ("search", "impression"):
        fields["title_id"] = message.title_id
    details = getattr(message, event_type)
    match event_type:
        case "view":
            fields["page"] = details.page or None
        case "play":
            fields["position_sec"] = details.position_sec
        case "pause" | "complete" | "skip":
            fields["position_sec"] = details.position_sec
            fields["watched_sec"] = details.watched_sec
        case "rate":
            fields["rating"] = details.rating
        case "search":
            fields["query"] = details.query
        case "impression":
            fields["title_ids"] = list(details.title_ids)
            fields["row"] = details.row
            fields["position"] = details.position
            fields["request_id"] = details.request_id or None
    return cast("IngestEvent", EVENT_MODELS[event_type].model_construct(**fields))
