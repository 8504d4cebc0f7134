"""The event schema covers every event type the brief names, each with its own details."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from recsys.events.v1 import events_pb2

BRIEF_TYPES = {"view", "play", "pause", "complete", "rate", "search", "skip", "impression"}


def test_every_event_type_has_a_details_case() -> None:
    types = {
        name.removeprefix("EVENT_TYPE_").lower()
        for name in events_pb2.EventType.DESCRIPTOR.values_by_name
        if name != "EVENT_TYPE_UNSPECIFIED"
    }
    details = {f.name for f in events_pb2.Event.DESCRIPTOR.oneofs_by_name["details"].fields}
    assert types == BRIEF_TYPES
    assert details == BRIEF_TYPES


def test_common_fields_exist() -> None:
    fields = set(events_pb2.Event.DESCRIPTOR.fields_by_name)
    assert {
        "event_id",
        "event_type",
        "user_id",
        "title_id",
        "device",
        "country",
        "occurred_at",
        "received_at",
    } <= fields


def test_event_round_trips_on_the_wire() -> None:
    event = events_pb2.Event(
        event_id="8a1f3c52-5c0e-4c4e-9a55-0c1d2f3e4a5b",
        event_type=events_pb2.EVENT_TYPE_IMPRESSION,
        user_id="u1",
        device=events_pb2.DEVICE_TV,
        country="BR",
        occurred_at=Timestamp(seconds=1_700_000_000, nanos=5_000_000),
        impression=events_pb2.ImpressionDetails(title_ids=["t1", "t2"], row="top_picks"),
    )
    decoded = events_pb2.Event.FromString(event.SerializeToString())
    assert decoded == event
    assert decoded.WhichOneof("details") == "impression"
    assert list(decoded.impression.title_ids) == ["t1", "t2"]
