"""The bronze writer's memory of recent event_ids (RecentIds) and a batch's resend accounting."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from recsys.events.v1 import events_pb2
from recsys_bronze.batch import Batch
from recsys_bronze.convert import Rejected, event_id_of, event_row
from recsys_bronze.dedup import RecentIds

T0 = 1_767_225_600_000  # ms


def test_a_resend_within_the_window_is_seen_and_only_the_first_copy_is_new() -> None:
    recent = RecentIds(max_ids=100, window_ms=60_000)
    assert not recent.seen("a", T0)
    assert not recent.seen("b", T0 + 1)
    assert recent.seen("a", T0 + 59_000)
    assert recent.seen("a", T0 + 60_000)  # exactly the window: still a resend
    assert len(recent) == 2


def test_an_id_older_than_the_window_is_forgotten() -> None:
    recent = RecentIds(max_ids=100, window_ms=60_000)
    recent.seen("a", T0)
    assert not recent.seen("b", T0 + 60_001)  # moves the horizon past "a"
    assert len(recent) == 1
    assert not recent.seen("a", T0 + 60_002)  # new again: a second row downstream


def test_the_count_bound_forgets_the_oldest_and_says_so() -> None:
    recent = RecentIds(max_ids=3, window_ms=3_600_000)
    for i in range(5):
        recent.seen(f"e{i}", T0 + i)
    assert len(recent) == 3
    assert recent.take_evicted_early() == 2
    assert recent.take_evicted_early() == 0
    assert not recent.seen("e0", T0 + 10)  # forgotten early
    assert recent.seen("e4", T0 + 11)


def test_timestamps_that_go_backwards_or_are_missing_count_as_the_newest_seen() -> None:
    recent = RecentIds(max_ids=100, window_ms=1_000)
    recent.seen("late-clock", T0 + 5_000)
    assert not recent.seen("skewed", T0)  # stamped T0 + 5000, not T0
    assert not recent.seen("no-timestamp", -1)
    assert recent.seen("skewed", T0 + 5_900)
    assert recent.seen("no-timestamp", T0 + 6_000)
    assert not recent.seen("x", T0 + 6_001)  # horizon T0 + 5001: all three stamped T0 + 5000 go
    assert len(recent) == 1


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="max_ids"):
        RecentIds(max_ids=0, window_ms=1)


def test_a_duplicate_advances_the_batch_offsets_and_leaves_with_its_partition() -> None:
    batch = Batch("t")
    batch.add_duplicate(0, 41)
    batch.add_duplicate(1, 7)
    assert (batch.records, batch.advance()) == (2, {("t", 0): 42, ("t", 1): 8})
    batch.drop_partitions([0])
    assert (batch.records, batch.duplicates, batch.advance()) == (1, {1: 1}, {("t", 1): 8})


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"\xff\xff\xff",
        events_pb2.Event(user_id="u1").SerializeToString(),
        events_pb2.Event(event_id="e1", user_id="u1").SerializeToString(),  # no occurred_at
    ],
)
def test_event_id_of_is_none_exactly_where_event_row_rejects(value: bytes | None) -> None:
    assert event_id_of(value) is None
    with pytest.raises(Rejected):
        event_row(value, partition=0, offset=0, ingested_at=0)


def test_event_id_of_a_usable_event() -> None:
    event = events_pb2.Event(event_id="e1", user_id="u1", occurred_at=Timestamp(seconds=1))
    assert event_id_of(event.SerializeToString()) == "e1"
