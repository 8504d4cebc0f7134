"""Schema v1 validation: each rule, the ``loc`` it reports, and what passes."""

from __future__ import annotations

import math
import time
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from recsys.catalog import DEVICES, EVENT_TYPES, ID_PATTERN, ISO_COUNTRIES
from recsys.events.v1 import events_pb2
from recsys_ingest.schema import (
    EVENT_MODELS,
    DeviceName,
    FieldError,
    IngestEvent,
    event_loc,
    validate_event,
)
from tests.ingest_support import TYPE_FIELDS, event, without

TITLE_EVENTS = ("view", "play", "pause", "complete", "rate", "skip")


def valid(raw: Any) -> IngestEvent:
    outcome = validate_event(raw, 0)
    assert not isinstance(outcome, list), outcome
    return outcome


def errors(raw: Any, index: int = 3) -> dict[str, str]:
    outcome = validate_event(raw, index)
    assert isinstance(outcome, list), f"expected a rejection, got {outcome!r}"
    assert all(isinstance(e, FieldError) for e in outcome)
    return {e.loc: e.msg for e in outcome}


def rejected_at(raw: Any, loc: str) -> str:
    found = errors(raw)
    assert loc in found, found
    return found[loc]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_a_complete_event_of_every_type_is_valid(event_type: str) -> None:
    parsed = valid(event(event_type))
    assert parsed.event_type == event_type


def test_vocabularies_match_the_catalog_and_the_proto() -> None:
    assert typing.get_args(DeviceName) == DEVICES
    assert tuple(EVENT_MODELS) == EVENT_TYPES
    proto_types = [v.name for v in events_pb2.EventType.DESCRIPTOR.values]
    assert proto_types[1:] == [f"EVENT_TYPE_{t.upper()}" for t in EVENT_TYPES]
    proto_devices = [v.name for v in events_pb2.Device.DESCRIPTOR.values]
    assert proto_devices[1:] == [f"DEVICE_{d.upper()}" for d in DEVICES]


def test_loc_format() -> None:
    assert event_loc(3) == "events[3]"
    assert event_loc(3, ("title_ids", 2)) == "events[3].title_ids[2]"


@pytest.mark.parametrize("field", ["event_id", "user_id", "occurred_at", "device", "country"])
@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_common_fields_are_required(event_type: str, field: str) -> None:
    assert rejected_at(without(event(event_type), field), f"events[3].{field}") == "Field required"


@pytest.mark.parametrize(
    ("event_type", "field"),
    [(t, "title_id") for t in TITLE_EVENTS]
    + [("play", "position_sec")]
    + [(t, f) for t in ("pause", "complete", "skip") for f in ("position_sec", "watched_sec")]
    + [("rate", "rating"), ("search", "query")]
    + [("impression", f) for f in ("title_ids", "row", "position")],
)
def test_type_specific_fields_are_required(event_type: str, field: str) -> None:
    assert rejected_at(without(event(event_type), field), f"events[3].{field}") == "Field required"


@pytest.mark.parametrize("event_type", ["search", "impression"])
def test_title_id_is_not_required_where_it_does_not_apply(event_type: str) -> None:
    assert "title_id" not in TYPE_FIELDS[event_type]
    valid(event(event_type))


def test_optional_fields_may_be_absent_or_null() -> None:
    valid(without(event("view"), "page"))
    valid(event("view", page=None, app_version=None))
    valid(without(event("impression"), "request_id"))
    assert valid(event("play", app_version="5.2.1")).app_version == "5.2.1"


def test_unknown_fields_are_ignored() -> None:
    parsed = valid(event("play", future_field={"nested": [1, 2]}, another=3))
    assert "future_field" not in parsed.model_dump()


# --- event_type ----------------------------------------------------------------------------------


def test_missing_event_type() -> None:
    assert rejected_at(without(event(), "event_type"), "events[3].event_type") == "Field required"


@pytest.mark.parametrize("value", ["unknown", "PLAY", "", 5, None, ["play"]])
def test_unknown_event_type(value: Any) -> None:
    msg = rejected_at(event("play", event_type=value), "events[3].event_type")
    assert "view, play, pause, complete, rate, search, skip, impression" in msg


@pytest.mark.parametrize("raw", ["a string", 42, None, [1, 2], True])
def test_an_event_must_be_an_object(raw: Any) -> None:
    assert errors(raw) == {"events[3]": "must be a JSON object"}


# --- ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "not-a-uuid",
        "0b6c8f0e5d0a4c369d7e1f0b7c1f2a9d",  # no hyphens
        "{0b6c8f0e-5d0a-4c36-9d7e-1f0b7c1f2a9d}",
        "urn:uuid:0b6c8f0e-5d0a-4c36-9d7e-1f0b7c1f2a9d",
        "0b6c8f0e-5d0a-4c36-9d7e-1f0b7c1f2a9",  # one digit short
        "0b6c8f0e-5d0a-4c36-9d7e-1f0b7c1f2a9g",
        "0b6c8f0e-5d0a-4c36-9d7e-1f0b7c1f2a9d\n",
        "",
        123,
    ],
)
def test_event_id_must_be_a_canonical_uuid(value: Any) -> None:
    rejected_at(event(event_id=value), "events[3].event_id")


@pytest.mark.parametrize(
    "value", ["0b6c8f0e-5d0a-4c36-9d7e-1f0b7c1f2a9d", "00000000-0000-0000-0000-000000000000"]
)
def test_event_id_any_uuid_version(value: str) -> None:
    assert valid(event(event_id=value)).event_id == value


def test_event_id_is_stored_in_lower_case() -> None:
    value = "0B6C8F0E-5D0A-4C36-9D7E-1F0B7C1F2A9D"
    assert valid(event(event_id=value)).event_id == value.lower()


BAD_IDS = ["", "_starts_with_underscore", "has space", "x" * 65, "tab\t", "new\nline", "ü", "a/b"]
GOOD_IDS = ["u1", "A", "user_42.b:c-d", "x" * 64, "0"]


def test_id_rule_is_the_catalogs() -> None:
    assert all(ID_PATTERN.fullmatch(v) for v in GOOD_IDS)
    assert not any(ID_PATTERN.fullmatch(v) for v in BAD_IDS)


@pytest.mark.parametrize(
    ("event_type", "field", "value"),
    [("play", f, v) for f in ("user_id", "title_id") for v in [*BAD_IDS, 7, None]]
    # null is "absent" for the optional request_id
    + [("impression", "request_id", v) for v in [*BAD_IDS, 7]],
)
def test_bad_ids_are_rejected(event_type: str, field: str, value: Any) -> None:
    rejected_at(event(event_type, **{field: value}), f"events[3].{field}")


@pytest.mark.parametrize("value", GOOD_IDS)
def test_good_ids_are_accepted(value: str) -> None:
    parsed = valid(event("play", user_id=value, title_id=value))
    assert parsed.user_id == value


def test_each_bad_title_in_an_impression_has_its_own_loc() -> None:
    found = errors(event("impression", title_ids=["ok1", "bad id", "ok2", 5]))
    assert set(found) == {"events[3].title_ids[1]", "events[3].title_ids[3]"}


@pytest.mark.parametrize("count", [0, 101])
def test_impression_title_count(count: int) -> None:
    titles = [f"t{i}" for i in range(count)]
    rejected_at(event("impression", title_ids=titles), "events[3].title_ids")


def test_impression_title_count_bounds_accepted() -> None:
    valid(event("impression", title_ids=["t1"]))
    valid(event("impression", title_ids=[f"t{i}" for i in range(100)]))


# --- country, device -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["us", "XX", "USA", "U", "", 840, None])
def test_country_must_be_an_upper_case_iso_code(value: Any) -> None:
    rejected_at(event(country=value), "events[3].country")


@pytest.mark.parametrize("value", [*sorted(ISO_COUNTRIES)[:5], "US", "BR", "ZW"])
def test_iso_countries_accepted(value: str) -> None:
    assert valid(event(country=value)).country == value


@pytest.mark.parametrize("value", ["TV", "fridge", "", 1, None])
def test_device_must_be_known(value: Any) -> None:
    rejected_at(event(device=value), "events[3].device")


@pytest.mark.parametrize("value", DEVICES)
def test_every_device_accepted(value: str) -> None:
    assert valid(event(device=value)).device == value


# --- occurred_at ---------------------------------------------------------------------------------


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01t12:00:00z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01 12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T14:30:00+02:30", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T07:00:00-05:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00.5Z", datetime(2024, 5, 1, 12, 0, 0, 500_000, tzinfo=UTC)),
        ("2024-05-01T12:00:00.123456789Z", datetime(2024, 5, 1, 12, 0, 0, 123_456, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2017, 1, 1, tzinfo=UTC)),  # a leap second
        ("1995-01-01T00:00:00Z", datetime(1995, 1, 1, tzinfo=UTC)),
        (1714564800000, datetime(2024, 5, 1, 12, tzinfo=UTC)),
        (1714564800123, datetime(2024, 5, 1, 12, 0, 0, 123_000, tzinfo=UTC)),
        (788918400000, datetime(1995, 1, 1, tzinfo=UTC)),
    ],
)
def test_occurred_at_rfc3339_or_epoch_ms(value: Any, expected: datetime) -> None:
    assert valid(event(occurred_at=value)).occurred_at == expected


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T12:00:00",  # no offset
        "2024-05-01",
        "12:00:00Z",
        "2024-05-01T12:00Z",  # no seconds
        "20240501T120000Z",
        "2024-13-01T12:00:00Z",
        "2024-02-30T12:00:00Z",
        "2024-05-01T12:00:00.1234567890Z",  # beyond nanoseconds
        "1714564800000",  # epoch ms must be a JSON number
        "yesterday",
        "",
    ],
)
def test_occurred_at_malformed_text(value: str) -> None:
    rejected_at(event(occurred_at=value), "events[3].occurred_at")


@pytest.mark.parametrize("value", [1714564800000.0, 1714564800.5, True, None, [2024]])
def test_occurred_at_other_json_types(value: Any) -> None:
    msg = rejected_at(event(occurred_at=value), "events[3].occurred_at")
    assert "RFC 3339" in msg


def test_occurred_at_range() -> None:
    """From 1995 to the clock plus the platform's skew bound (5 minutes), no further."""
    now = datetime.now(UTC)
    early = datetime(1994, 12, 31, 23, 59, 59, tzinfo=UTC)
    for value in (
        early.isoformat(),
        _ms(early),
        (now + timedelta(minutes=6)).isoformat(),
        _ms(now + timedelta(minutes=6)),
        (now + timedelta(hours=23)).isoformat(),
        -1,
        10**30,
    ):
        msg = rejected_at(event(occurred_at=value), "events[3].occurred_at")
        assert "between 1995-01-01T00:00:00Z and 5 minutes from now" in msg
    for value in ((now + timedelta(minutes=4)).isoformat(), _ms(now + timedelta(minutes=4))):
        valid(event(occurred_at=value))
    valid(event(occurred_at=int(time.time() * 1000)))


# --- numbers and text ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 2, 3, 4, 5])
def test_rating_1_to_5(value: int) -> None:
    parsed = valid(event("rate", rating=value))
    assert parsed.rating == value  # type: ignore[union-attr]


@pytest.mark.parametrize("value", [0, 6, -1, 4.5, 5.0, "5", True, None])
def test_rating_must_be_an_integer_1_to_5(value: Any) -> None:
    rejected_at(event("rate", rating=value), "events[3].rating")


@pytest.mark.parametrize("field", ["position_sec", "watched_sec"])
@pytest.mark.parametrize(
    "value", [-0.5, 86_400.01, math.inf, -math.inf, math.nan, "10", True, None]
)
def test_playback_seconds_finite_0_to_86400(field: str, value: Any) -> None:
    rejected_at(event("pause", **{field: value}), f"events[3].{field}")


@pytest.mark.parametrize("value", [0, 0.0, 1, 86_400, 3600.25])
def test_playback_seconds_accepted(value: float) -> None:
    parsed = valid(event("skip", position_sec=value, watched_sec=value))
    assert parsed.position_sec == value  # type: ignore[union-attr]


@pytest.mark.parametrize("value", ["", "q" * 201, 5, None])
def test_query_1_to_200_characters(value: Any) -> None:
    rejected_at(event("search", query=value), "events[3].query")


def test_query_bounds_accepted() -> None:
    valid(event("search", query="q"))
    valid(event("search", query="é" * 200))


@pytest.mark.parametrize("value", ["", "r" * 65, 3])
def test_row_1_to_64_characters(value: Any) -> None:
    rejected_at(event("impression", row=value), "events[3].row")


@pytest.mark.parametrize("value", [-1, 1001, 1.5, "1", True])
def test_impression_position_0_to_1000(value: Any) -> None:
    rejected_at(event("impression", position=value), "events[3].position")


@pytest.mark.parametrize("value", [0, 1000])
def test_impression_position_bounds_accepted(value: int) -> None:
    valid(event("impression", position=value))


@pytest.mark.parametrize(("field", "value"), [("page", ""), ("page", "p" * 65), ("app_version", 5)])
def test_optional_text_fields_are_checked_when_present(field: str, value: Any) -> None:
    rejected_at(event("view", **{field: value}), f"events[3].{field}")


def test_every_problem_of_an_event_is_reported() -> None:
    raw = event("rate", rating=9, country="us", device="fridge", user_id="bad id")
    assert set(errors(raw)) == {
        "events[3].rating",
        "events[3].country",
        "events[3].device",
        "events[3].user_id",
    }
