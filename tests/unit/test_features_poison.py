"""Records an attacker or a broken producer could write to Kafka: the fold refuses them with a
reason, heals what earlier versions let through, and keeps every member's state bounded."""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta

import pytest

from recsys.events.v1 import events_pb2
from recsys.features.state import UserState
from recsys.features.titles import DictCatalog, TitleInfo
from recsys_features.fold import FAILED, FUTURE, INVALID, BatchResult, Record, decoding, fold_batch
from tests.features_support import CATALOG, T0, event, minutes, workload

GRACE = 5 * 60 * 1000
T0_MS = int(T0.timestamp() * 1000)
NOW = timedelta(days=2)  # the "wall clock" of these tests, after every workload event
NOW_MS = T0_MS + int(NOW.total_seconds() * 1000)
LIMIT_MS = NOW_MS + 5 * 60 * 1000


def _records(events: list[events_pb2.Event], offset: int = 0) -> list[Record]:
    return [
        Record(0, ev.SerializeToString(), offset + i, ev.user_id.encode())
        for i, ev in enumerate(events)
    ]


def _fold(
    records: list[Record],
    store: dict[bytes, bytes],
    *,
    limit_ms: int | None = LIMIT_MS,
    catalog: DictCatalog = CATALOG,
) -> BatchResult:
    result = fold_batch(
        records, load=decoding(store.get), catalog=catalog, grace_ms=GRACE, limit_ms=limit_ms
    )
    for update in result.changed:
        store[update.key] = update.state
    return result


def _future_burst(users: list[str], hours: float = 23) -> list[events_pb2.Event]:
    at = NOW + timedelta(hours=hours)
    return [
        event(f"future-{u}-{i}", kind, at + minutes(i), user=u, title="tt_doc")
        for u in users
        for i, kind in enumerate(["play", "complete", "view"])
    ]


def test_events_beyond_the_skew_bound_are_dead_letters_and_change_no_state() -> None:
    events = workload(users=20, per_user=30)
    clean: dict[bytes, bytes] = {}
    _fold(_records(events), clean)
    # The same stream with far-future events of two members of the stream and an outsider.
    attacked: dict[bytes, bytes] = {}
    burst = _future_burst(["w003", "w011", "outsider"])
    mixed = events[:200] + burst + events[200:]
    result = _fold(_records(mixed), attacked)
    assert attacked == clean  # byte for byte, the two attacked members included
    assert result.outcomes[FUTURE] == len(burst)
    assert {d.record.value for d in result.dead} == {ev.SerializeToString() for ev in burst}
    assert all(d.reason.startswith("future: occurred_at is ") for d in result.dead)


def test_an_event_within_the_skew_bound_is_applied_and_leaves_on_time_events_on_time() -> None:
    store: dict[bytes, bytes] = {}
    ahead = event("ahead", "view", NOW + minutes(5))  # exactly at the bound
    now = event("now", "view", NOW)
    result = _fold(_records([ahead, now]), store)
    assert result.outcomes == Counter(applied=2)


def test_a_state_poisoned_by_a_future_event_heals_on_its_next_batch() -> None:
    store: dict[bytes, bytes] = {}
    real = [
        event("p1", "play", NOW - minutes(10), title="tt_drama"),
        event("s1", "search", NOW - minutes(8), query="space"),
    ]
    future = event("f1", "play", NOW + timedelta(hours=23), title="tt_doc", device="console")
    _fold(_records([*real, future]), store, limit_ms=None)  # a worker without the bound
    poisoned = UserState.decode(store[b"u1"])
    assert poisoned.watermark_ms > LIMIT_MS
    # Its next on-time event is healed first, so it is applied, not late: the future event is
    # gone, and what it had not already pushed out of the windows comes back.
    result = _fold(_records([event("p2", "play", NOW, title="tt_action")]), store)
    assert result.outcomes == Counter(applied=1)
    healed = UserState.decode(store[b"u1"])
    assert healed.watermark_ms == NOW_MS
    assert "f1" not in healed.seen
    values = healed.features()
    assert values["recently_watched_title_ids"] == ["tt_action", "tt_drama"]
    assert values["current_device_type"] == "tv"
    assert values["current_genre_last_30min"] == "action"


def _unfit(**changes: object) -> events_pb2.Event:
    ev = event("x1", "pause", minutes(1), title="tt_drama", watched=10.0)
    for name, value in changes.items():
        if name == "watched_sec":
            ev.pause.watched_sec = value  # type: ignore[assignment]
        else:
            setattr(ev, name, value)
    return ev


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"user_id": "u" * 65}, "user_id"),
        ({"user_id": "has space"}, "user_id"),
        ({"event_id": ""}, "event_id"),
        ({"event_id": "e" * 65}, "event_id"),
        ({"title_id": "<script>"}, "title_id"),
        ({"country": "United States"}, "country"),
        ({"watched_sec": math.nan}, "pause.watched_sec is nan"),
        ({"watched_sec": math.inf}, "pause.watched_sec is inf"),
    ],
)
def test_unfit_events_are_dead_letters_with_the_reason(
    changes: dict[str, object], reason: str
) -> None:
    store: dict[bytes, bytes] = {}
    bad = _unfit(**changes)
    good = event("g1", "view", minutes(2), user="u2")
    result = _fold(_records([bad, good]), store)
    assert result.outcomes == Counter({INVALID: 1, "applied": 1})
    assert len(result.dead) == 1
    assert result.dead[0].record.value == bad.SerializeToString()
    assert result.dead[0].reason.startswith("invalid: ")
    assert reason in result.dead[0].reason
    assert list(store) == [b"u2"]


def test_a_record_on_another_members_partition_is_a_dead_letter() -> None:
    ev = event("e1", "view", minutes(0), user="u1")
    records = [Record(2, ev.SerializeToString(), 5, b"not-u1")]
    empty: dict[bytes, bytes] = {}
    result = fold_batch(
        records,
        load=decoding(empty.get),
        catalog=CATALOG,
        grace_ms=GRACE,
        partition_of=lambda key: 1,
    )
    assert result.updates == []
    assert "belongs to partition 1, not 2" in result.dead[0].reason


class _BrokenCatalog(DictCatalog):
    """A catalog with a bug for one title: folding its events raises."""

    def lookup(self, title_id: str) -> TitleInfo | None:
        if title_id == "tt_comedy":
            raise RuntimeError("catalog bug")
        return CATALOG.lookup(title_id)


def test_an_event_whose_fold_raises_is_a_dead_letter_and_the_rest_is_applied() -> None:
    events = [ev for ev in workload(users=10, per_user=30) if ev.title_id != "tt_comedy"]
    clean: dict[bytes, bytes] = {}
    _fold(_records(events), clean)
    # Each member's first event (so it is on time) is a play of the title the catalog fails on.
    poison = [
        event(f"c{i}", "play", minutes(0), user=f"w00{i}", title="tt_comedy") for i in range(3)
    ]
    broken: dict[bytes, bytes] = {}
    result = _fold(_records(poison + events), broken, catalog=_BrokenCatalog())
    assert broken == clean
    assert result.outcomes[FAILED] == 3
    assert sorted(d.record.value for d in result.dead) == sorted(
        ev.SerializeToString() for ev in poison
    )
    assert all("catalog bug" in d.reason for d in result.dead)


def test_a_state_that_cannot_be_used_is_set_aside_and_the_member_starts_afresh() -> None:
    # A watch entry with a null duration, as a NaN once encoded to JSON.
    broken = UserState(watermark_ms=T0_MS, watch=[(T0_MS, "drama", None)])  # type: ignore[list-item]
    store = {b"u1": broken.encode()}
    result = _fold(_records([event("e1", "view", minutes(1))]), store)
    assert result.outcomes == Counter(applied=1)
    assert [d.reason.split(":")[0] for d in result.dead] == ["unreadable_state"]
    assert result.dead[0].record.value == broken.encode()
    assert UserState.decode(store[b"u1"]).session_events == 1


def test_a_members_state_stays_bounded_whatever_it_sends() -> None:
    """A bot: 20,000 events in under an hour, every id new, every query new, every title new."""
    kinds = ["play", "pause", "search", "skip"]
    events = [
        event(
            f"bot-{i}",
            kinds[i % 4],
            timedelta(seconds=i * 0.15),
            user="bot",
            title=f"tt_{i}" if kinds[i % 4] != "search" else "",
            query=f"q{i} " + "x" * 300,
            watched=1.0,
        )
        for i in range(20_000)
    ]
    store: dict[bytes, bytes] = {}
    for start in range(0, len(events), 5_000):
        _fold(_records(events[start : start + 5_000]), store, limit_ms=None)
    state = UserState.decode(store[b"bot"])
    assert len(store[b"bot"]) < 100_000  # far below Kafka's 1 MiB record limit
    assert len(state.seen) == 1_000
    assert len(state.searches) == 20
    assert all(len(q) <= 200 for _, q in state.searches)


def test_the_caps_give_the_same_state_per_event_and_per_batch() -> None:
    events = [
        event(
            f"b{i}",
            ["play", "pause", "search"][i % 3],
            timedelta(seconds=i),
            user="bot",
            title="tt_drama" if i % 3 != 2 else "",
            query=f"q{i % 37}",
            watched=2.0,
        )
        for i in range(1_500)
    ]
    one: dict[bytes, bytes] = {}
    for record in _records(events):
        _fold([record], one, limit_ms=None)
    batched: dict[bytes, bytes] = {}
    _fold(_records(events), batched, limit_ms=None)
    assert one == batched
