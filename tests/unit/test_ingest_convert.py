"""JSON → protobuf records (and back), the per-request batch check, partitioning, OpenAPI."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from google.protobuf.timestamp_pb2 import Timestamp

from recsys.catalog import EVENT_TYPES
from recsys.config import Settings
from recsys.events.v1 import events_pb2
from recsys_ingest.app import create_app
from recsys_ingest.batch import check_batch
from recsys_ingest.batching import partition_for
from recsys_ingest.convert import from_proto, timestamp_now, to_proto, to_record
from recsys_ingest.schema import IngestEvent, validate_event
from tests.ingest_support import event

RECEIVED = Timestamp(seconds=1_714_600_000, nanos=123_000_000)


def parsed(raw: dict[str, Any]) -> IngestEvent:
    outcome = validate_event(raw, 0)
    assert not isinstance(outcome, list), outcome
    return outcome


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_round_trip_through_the_protobuf(event_type: str) -> None:
    original = parsed(event(event_type, user_id="u-7", app_version="5.2.1"))
    key, value = to_record(original, RECEIVED)
    message = events_pb2.Event.FromString(value)
    assert key == b"u-7"
    assert message.WhichOneof("details") == event_type
    assert events_pb2.EventType.Name(message.event_type) == f"EVENT_TYPE_{event_type.upper()}"
    assert message.received_at == RECEIVED
    assert from_proto(message) == original


def test_fields_land_where_the_proto_says() -> None:
    message = to_proto(
        parsed(event("pause", device="mobile", country="BR", position_sec=61.5, watched_sec=60)),
        RECEIVED,
    )
    assert message.device == events_pb2.DEVICE_MOBILE
    assert message.country == "BR"
    assert message.title_id == "tt0000001"
    assert (message.pause.position_sec, message.pause.watched_sec) == (61.5, 60.0)

    impression = to_proto(parsed(event("impression", request_id=None)), RECEIVED)
    assert impression.title_id == ""
    assert list(impression.impression.title_ids) == ["tt0000001", "tt0000002", "tt0000003"]
    assert (impression.impression.row, impression.impression.position) == ("top_picks", 2)
    assert impression.impression.request_id == ""

    rate = to_proto(parsed(event("rate", rating=5)), RECEIVED)
    assert rate.rate.rating == 5
    search = to_proto(parsed(event("search", query="brazil")), RECEIVED)
    assert (search.search.query, search.title_id) == ("brazil", "")


@pytest.mark.parametrize(
    ("occurred_at", "seconds", "nanos"),
    [
        (1714564800123, 1714564800, 123_000_000),
        (788918400000, 788918400, 0),  # 1995-01-01, the earliest accepted
        ("2024-05-01T12:00:00Z", 1714564800, 0),
        ("2024-05-01T14:00:00.25+02:00", 1714564800, 250_000_000),
        ("2024-05-01T12:00:00.123456789Z", 1714564800, 123_456_000),  # microsecond precision
    ],
)
def test_occurred_at_becomes_a_utc_timestamp(occurred_at: Any, seconds: int, nanos: int) -> None:
    message = to_proto(parsed(event("play", occurred_at=occurred_at)), RECEIVED)
    assert (message.occurred_at.seconds, message.occurred_at.nanos) == (seconds, nanos)


def test_received_at_is_the_server_clock() -> None:
    before = datetime.now(UTC)
    stamp = timestamp_now().ToDatetime(tzinfo=UTC)
    assert before <= stamp <= datetime.now(UTC)


def test_partitioning_is_the_default_java_one() -> None:
    keys = [f"u{i}".encode() for i in range(2_000)] + [b"", b"x" * 64, "é".encode()]
    for partitions in (1, 3, 6, 12):
        expected = [DefaultPartitioner()(k, list(range(partitions)), []) for k in keys]
        assert [partition_for(k, partitions) for k in keys] == expected


# --- one request's batch -------------------------------------------------------------------------


def test_mixed_batch_keeps_the_valid_and_reports_the_invalid() -> None:
    good = [event("play", user_id="a"), event("rate", user_id="b", rating=2)]
    bad = event("rate", rating=9)
    checked = check_batch([good[0], bad, "junk", good[1]], max_event_bytes=8192)
    assert (checked.accepted, checked.rejected) == (2, 2)
    assert [k for k, _ in checked.records] == [b"a", b"b"]
    assert [r["status"] for r in checked.results] == [
        "accepted",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert checked.results[0] == {"index": 0, "event_id": good[0]["event_id"], "status": "accepted"}
    assert checked.results[1] == {
        "index": 1,
        "event_id": bad["event_id"],
        "status": "rejected",
        "errors": [{"loc": "events[1].rating", "msg": "Input should be less than or equal to 5"}],
    }
    assert checked.results[2]["event_id"] is None
    assert checked.results[2]["errors"] == [{"loc": "events[2]", "msg": "must be a JSON object"}]
    assert checked.accepted_types == {"play": 1, "rate": 1}
    assert checked.rejected_reasons == {
        ("rate", "less_than_equal"): 1,
        ("unknown", "object_type"): 1,
    }
    body = orjson.loads(checked.response_body())
    assert (body["accepted"], body["rejected"], len(body["results"])) == (2, 2, 4)


def test_an_event_over_the_size_limit_is_rejected_alone() -> None:
    big = event("search", padding="x" * 9000)
    checked = check_batch([event(), big], max_event_bytes=8192)
    assert checked.accepted == 1
    (problem,) = checked.results[1]["errors"]
    assert problem["loc"] == "events[1]"
    assert "limit is 8192" in problem["msg"]
    assert checked.results[1]["event_id"] == big["event_id"]
    assert checked.rejected_reasons == {("search", "event_too_large"): 1}


def test_a_deeply_nested_event_is_rejected_not_a_crash() -> None:
    deep: Any = []
    for _ in range(600):  # orjson reads 1024 levels but writes only 254
        deep = [deep]
    checked = check_batch([event(extra=deep), event()], max_event_bytes=8192)
    assert checked.accepted == 1
    assert checked.results[0]["errors"] == [{"loc": "events[0]", "msg": "nested too deeply"}]


def test_a_rejected_event_echoes_only_a_valid_event_id() -> None:
    checked = check_batch(
        [
            event(event_id="nope", rating=9),
            event("rate", event_id="A" * 8 + "-0000-0000-0000-" + "B" * 12, rating=0),
        ],
        max_event_bytes=8192,
    )
    assert checked.results[0]["event_id"] is None
    assert checked.results[1]["event_id"] == "aaaaaaaa-0000-0000-0000-bbbbbbbbbbbb"


# --- the published contract ----------------------------------------------------------------------


def test_openapi_publishes_the_event_schema_and_every_status() -> None:
    spec = create_app(Settings()).openapi()
    schemas = spec["components"]["schemas"]
    for name in ("EventBatch", "PlayEvent", "ImpressionEvent", "BatchResult", "Problem"):
        assert name in schemas
    operation = spec["paths"]["/v1/events"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/EventBatch"}
    assert set(operation["responses"]) == {"202", "400", "401", "408", "413", "415", "422", "503"}
    assert {"/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


def test_a_batch_must_hold_the_largest_event() -> None:
    settings = Settings()
    ingest = settings.ingest.model_copy(
        update={"max_event_bytes": 65_536, "producer_batch_bytes": 65_536}
    )
    with pytest.raises(ValueError, match="PRODUCER_BATCH_BYTES"):
        create_app(settings.model_copy(update={"ingest": ingest}))


def test_the_local_default_key_is_refused_in_kubernetes() -> None:
    settings = Settings(environment="kubernetes")
    with pytest.raises(ValueError, match="local default key"):
        create_app(settings)
    create_app(
        settings.model_copy(
            update={"ingest": settings.ingest.model_copy(update={"api_keys": "k8s-secret"})}
        )
    )
