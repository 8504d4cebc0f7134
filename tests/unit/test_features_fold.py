"""Folding batches of records: batch boundaries never change a result (docs/features.md)."""

from __future__ import annotations

from collections import Counter

import pytest

from recsys.events.v1 import events_pb2
from recsys.features.state import UserState
from recsys_features.fold import INVALID, BatchResult, Record, decoding, fold_batch
from tests.features_support import CATALOG, EXPECTED_U1, event, minutes, scripted_u1, workload

GRACE = 5 * 60 * 1000
NOTHING: dict[bytes, bytes] = {}  # an empty table


def _fold(records: list[Record], table: dict[bytes, bytes]) -> BatchResult:
    return fold_batch(records, load=decoding(table.get), catalog=CATALOG, grace_ms=GRACE)


def _records(events: list[events_pb2.Event]) -> list[Record]:
    return [Record(hash(ev.user_id) % 3, ev.SerializeToString()) for ev in events]


Side = list[tuple[str, bytes, bytes]]


def _run(records: list[Record], batch_size: int) -> tuple[dict[bytes, bytes], Counter[str], Side]:
    store: dict[bytes, bytes] = {}
    outcomes: Counter[str] = Counter()
    side: Side = []
    for start in range(0, len(records), batch_size):
        result = fold_batch(
            records[start : start + batch_size],
            load=decoding(store.get),
            catalog=CATALOG,
            grace_ms=GRACE,
        )
        for update in result.updates:
            store[update.key] = update.state
            assert update.snapshot.values == UserState.decode(update.state).features()
        outcomes += result.outcomes
        side += [("late", k, v) for k, v in result.late]
        side += [("session", k, v) for k, v in result.sessions]
    return store, outcomes, side


@pytest.mark.parametrize("batch_size", [7, 100, 5000])
def test_any_batching_gives_the_states_and_outputs_of_one_event_at_a_time(batch_size: int) -> None:
    records = _records(workload(users=40, per_user=60))
    one_by_one = _run(records, 1)
    batched = _run(records, batch_size)
    assert batched[0] == one_by_one[0]  # encoded states, byte for byte
    assert batched[1] == one_by_one[1]
    assert sorted(batched[2]) == sorted(one_by_one[2])
    # The workload has both duplicates and late events, so both paths were compared.
    assert one_by_one[1]["duplicate"] > 0
    assert one_by_one[1]["late"] > 0


def test_one_update_per_changed_member_with_the_hand_computed_features() -> None:
    result = fold_batch(
        _records(scripted_u1()), load=decoding(NOTHING.get), catalog=CATALOG, grace_ms=GRACE
    )
    assert [u.key for u in result.updates] == [b"u1"]
    assert result.updates[0].snapshot.values == EXPECTED_U1
    assert result.outcomes == Counter(applied=13, duplicate=1, late=1)
    assert len(result.late) == 1


def test_a_batch_of_only_duplicates_changes_nothing() -> None:
    first = event("a", "play", minutes(0), title="tt_drama")
    done = fold_batch(
        _records([first]), load=decoding(NOTHING.get), catalog=CATALOG, grace_ms=GRACE
    )
    store = {u.key: u.state for u in done.updates}
    again = fold_batch(
        _records([first, first]), load=decoding(store.get), catalog=CATALOG, grace_ms=GRACE
    )
    assert again.changed == []  # no state to write to the table or the changelog ...
    # ... but the stores get the member again: a re-delivered event may be one whose write a
    # crash lost (docs/features.md, "Restarts").
    assert [(u.key, u.state) for u in again.updates] == [(b"u1", store[b"u1"])]
    assert again.outcomes == Counter(duplicate=2)


def test_undecodable_records_and_events_without_ids_are_dead_letters() -> None:
    no_user = event("x", "view", minutes(0), user="")
    records = [Record(0, b"\xff\xff not protobuf", offset=7, key=b"k"), *_records([no_user])]
    result = _fold(records, NOTHING)
    assert result.outcomes == Counter({INVALID: 2})
    assert result.updates == []
    assert [d.record for d in result.dead] == records  # the original bytes, key and origin
    assert "not a recsys.events.v1.Event" in result.dead[0].reason
    assert result.dead[1].reason.startswith("invalid: user_id ''")
