"""Kafka record -> bronze row: every Event field, details as JSON, malformed records rejected."""

from __future__ import annotations

import json

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from recsys.events.v1 import events_pb2
from recsys_bronze.convert import Rejected, event_row, reject_row, to_micros


def _ts(seconds: int, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


def _play() -> events_pb2.Event:
    return events_pb2.Event(
        event_id="e-1",
        event_type=events_pb2.EVENT_TYPE_PLAY,
        user_id="u-1",
        title_id="tt1",
        device=events_pb2.DEVICE_TV,
        country="DE",
        occurred_at=_ts(1_700_000_000, 123_456_789),
        received_at=_ts(1_700_000_001),
        app_version="5.2.1",
        play=events_pb2.PlayDetails(position_sec=0.0),
    )


def test_every_field_of_a_play_event_lands_in_its_column() -> None:
    row = event_row(_play().SerializeToString(), partition=3, offset=42, ingested_at=7)
    assert row == {
        "event_id": "e-1",
        "event_type": "play",
        "user_id": "u-1",
        "title_id": "tt1",
        "device": "tv",
        "country": "DE",
        "occurred_at": 1_700_000_000_123_456,  # microseconds; nanoseconds truncated
        "received_at": 1_700_000_001_000_000,
        "app_version": "5.2.1",
        "details_kind": "play",
        # A zero position is kept: defaults are facts, not missing values.
        "details": '{"position_sec":0.0}',
        "kafka_partition": 3,
        "kafka_offset": 42,
        "ingested_at": 7,
    }


def test_impression_details_keep_repeated_fields_and_empty_strings_become_null() -> None:
    event = events_pb2.Event(
        event_id="e-2",
        event_type=events_pb2.EVENT_TYPE_IMPRESSION,
        user_id="u-2",
        occurred_at=_ts(1),
        impression=events_pb2.ImpressionDetails(
            title_ids=["a", "b"], row="top_picks", position=2, request_id="r"
        ),
    )
    row = event_row(event.SerializeToString(), partition=0, offset=0, ingested_at=0)
    assert row["title_id"] is None
    assert row["device"] is None
    assert row["country"] is None
    assert row["app_version"] is None
    assert row["received_at"] is None
    assert row["details_kind"] == "impression"
    assert row["details"] is not None
    assert json.loads(row["details"]) == {
        "title_ids": ["a", "b"],
        "row": "top_picks",
        "position": 2,
        "request_id": "r",
    }


def test_an_event_without_details_has_null_details() -> None:
    event = _play()
    event.ClearField("play")
    row = event_row(event.SerializeToString(), partition=0, offset=0, ingested_at=0)
    assert row["details_kind"] is None
    assert row["details"] is None


def test_an_enum_number_from_a_newer_schema_is_kept_not_rejected() -> None:
    event = _play()
    event.event_type = 99  # type: ignore[assignment]
    row = event_row(event.SerializeToString(), partition=0, offset=0, ingested_at=0)
    assert row["event_type"] == "unknown_99"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "no value"),
        (b"\xff\xff\xff", "not a recsys.events.v1.Event"),
        (b"", "event_id is empty"),
        (events_pb2.Event(event_id="x", occurred_at=_ts(1)).SerializeToString(), "user_id"),
        (events_pb2.Event(event_id="x", user_id="u").SerializeToString(), "occurred_at"),
    ],
)
def test_malformed_records_are_rejected_with_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(Rejected, match=reason):
        event_row(value, partition=0, offset=0, ingested_at=0)


def test_a_reject_row_keeps_the_record_byte_for_byte() -> None:
    row = reject_row(
        topic="t",
        partition=1,
        offset=2,
        timestamp_ms=1_500,
        key=b"k",
        value=b"\xff",
        error="bad",
        rejected_at=9,
    )
    assert row["kafka_timestamp"] == 1_500_000
    assert (row["kafka_key"], row["kafka_value"], row["error"]) == (b"k", b"\xff", "bad")
    assert (
        reject_row(
            topic="t",
            partition=1,
            offset=2,
            timestamp_ms=-1,
            key=None,
            value=None,
            error="e",
            rejected_at=0,
        )["kafka_timestamp"]
        is None
    )


def test_to_micros_truncates_nanoseconds() -> None:
    assert to_micros(_ts(2, 999)) == 2_000_000
    assert to_micros(_ts(0, 1_999)) == 1
