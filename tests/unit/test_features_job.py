"""FeatureJob's bookkeeping between batches: idle sessions and recovery, without Kafka."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson

from recsys_features.app import EventBatches
from recsys_features.fold import BatchResult, DeadLetter, Record
from recsys_features.job import FeatureJob
from tests.features_support import event, make_job, minutes, workload


def _job(**features: Any) -> FeatureJob:
    return make_job(**features)


def _fold(job: FeatureJob, records: list[Record], table: dict[bytes, bytes]) -> BatchResult:
    """One batch whose records the broker acknowledged."""
    result = job.fold(records, table)
    job.commit(result, table)
    return result


def _same_partition_users(job: FeatureJob, n: int) -> list[str]:
    users = [f"m{i}" for i in range(200)]
    target = job.partition_of(users[0].encode())
    return [u for u in users if job.partition_of(u.encode()) == target][:n]


def test_sessions_idle_past_gap_and_grace_in_partition_event_time_are_summarised_once() -> None:
    job = _job()
    a, b, c = _same_partition_users(job, 3)
    partition = job.partition_of(a.encode())
    table: dict[bytes, bytes] = {}

    def fold(*events: Any) -> None:
        _fold(job, [Record(partition, ev.SerializeToString()) for ev in events], table)

    fold(
        event("a1", "view", minutes(0), user=a),
        event("a2", "view", minutes(10), user=a),
        event("c1", "view", minutes(40), user=c),
    )
    assert job.close_idle_sessions(table) == []  # the partition is at 10:40: nothing idle yet
    fold(event("b1", "view", minutes(60), user=b))  # 11:00: a's 10:10 is > 30 + 5 min behind
    closes = job.close_idle_sessions(table)
    assert [(x.key, orjson.loads(x.summary)["event_count"]) for x in closes] == [(a.encode(), 2)]
    assert table[a.encode()] == closes[0].state  # the mark is in the stored state
    assert job.close_idle_sessions(table) == []
    # a's next event after the gap starts a new session without a second summary.
    result = _fold(
        job,
        [Record(partition, event("a3", "view", minutes(120), user=a).SerializeToString())],
        table,
    )
    assert result.sessions == []


def test_recovered_states_rebuild_the_idle_session_index() -> None:
    job = _job()
    a, b = _same_partition_users(job, 2)
    partition = job.partition_of(a.encode())
    table: dict[bytes, bytes] = {}
    _fold(
        job,
        [
            Record(partition, event("a1", "view", minutes(0), user=a).SerializeToString()),
            Record(partition, event("b1", "view", minutes(60), user=b).SerializeToString()),
        ],
        table,
    )
    recovered = _job()
    assert recovered.recover(table, {partition}).members == 2
    assert [x.key for x in recovered.close_idle_sessions(table)] == [a.encode()]


def test_the_state_cache_changes_no_stored_byte() -> None:
    events = workload(users=30, per_user=40)
    tables: list[dict[bytes, bytes]] = []
    for job in (_job(state_cache_members=0), _job(state_cache_members=8)):  # 8 < 30: evictions
        table: dict[bytes, bytes] = {}
        records = [
            Record(job.partition_of(ev.user_id.encode()), ev.SerializeToString()) for ev in events
        ]
        for start in range(0, len(records), 25):
            _fold(job, records[start : start + 25], table)
        job.close_idle_sessions(table)
        tables.append(table)
    assert tables[0] == tables[1]


def test_handed_over_partitions_and_recovery_drop_cached_states() -> None:
    job = _job()
    (user,) = _same_partition_users(job, 1)
    key, partition = user.encode(), job.partition_of(user.encode())
    table: dict[bytes, bytes] = {}

    def fold(event_id: str, minute: float) -> int:
        ev = event(event_id, "view", minutes(minute), user=user)
        _fold(job, [Record(partition, ev.SerializeToString())], table)
        events_in_session: int = orjson.loads(table[key])["ss"][2]
        return events_in_session

    fold("e1", 0)
    assert fold("e2", 1) == 2
    older = table[key]
    assert fold("e3", 2) == 3
    # The partition moves away and back: recovery puts the changelog's state in the table.
    job.forget({partition})
    table[key] = older
    assert fold("e4", 3) == 3  # e1, e2 from the table, then e4 (a stale cache would say 4)
    table[key] = older
    job.recover(table, {partition})  # recovery after a rebalance that kept the partition
    assert fold("e5", 4) == 3


def test_members_silent_for_the_ttl_are_evicted_with_a_tombstone() -> None:
    job = _job(member_ttl_s=2 * 3600)
    a, b, c = _same_partition_users(job, 3)
    partition = job.partition_of(a.encode())
    table: dict[bytes, bytes] = {}

    def play(user: str, event_id: str, minute: float) -> None:
        ev = event(event_id, "play", minutes(minute), user=user, title="tt_drama")
        _fold(job, [Record(partition, ev.SerializeToString())], table)

    play(a, "a1", 0)
    play(b, "b1", 90)
    play(c, "c1", 150)  # the partition is at 12:30: a (10:00) has been silent 2.5 h
    assert job.evict_silent_members(table) == []  # a's hour (10-11) ends 2 h before 13:00
    play(c, "c2", 181)  # 13:01
    tombstones = job.evict_silent_members(table)
    assert [(t.key, t.state) for t in tombstones] == [(a.encode(), None)]
    assert sorted(table) == sorted([b.encode(), c.encode()])
    assert job.metrics.members._value.get() == 2
    assert job.evict_silent_members(table) == []
    # An evicted member who comes back starts afresh.
    play(a, "a2", 182)
    assert orjson.loads(table[a.encode()])["ss"][2] == 1


def test_the_default_member_ttl_is_the_longest_real_time_ttl_of_the_registry() -> None:
    assert _job().ttl_ms == 30 * 24 * 3600 * 1000


def test_the_commit_floor_follows_the_store_writes() -> None:
    job = _job()
    (user,) = _same_partition_users(job, 1)
    partition = job.partition_of(user.encode())
    table: dict[bytes, bytes] = {}
    records = [
        Record(partition, event(f"e{i}", "view", minutes(i), user=user).SerializeToString(), 40 + i)
        for i in range(3)
    ]
    _fold(job, records, table)
    assert job.commit_floor(partition) == 42  # the member's newest record
    asyncio.run(job.redis.drain())
    assert job.commit_floor(partition) == 42  # Cassandra has not written it yet
    asyncio.run(job.cassandra.drain())
    assert job.commit_floor(partition) is None


class _Batches(EventBatches):
    """EventBatches with produce() recording instead of talking to Kafka."""

    def __init__(self, job: FeatureJob, table: dict[bytes, bytes]) -> None:
        app = SimpleNamespace(should_stop=False)
        super().__init__(app, SimpleNamespace(data=table), job, job.settings)
        self.dead: list[DeadLetter] = []

    async def produce(self, changelog: Any, *, dead: Any = (), **_: Any) -> None:
        self.dead += list(dead)


class _FailingCommit(FeatureJob):
    """A job with a bug: committing one member's batch raises."""

    victim = b""

    def commit(self, result: BatchResult, store: Any) -> None:
        if any(u.key == self.victim for u in result.updates):
            raise RuntimeError("commit bug")
        super().commit(result, store)


async def test_a_batch_that_fails_outside_the_fold_is_split_until_the_record_at_fault() -> None:
    events = workload(users=12, per_user=10)
    clean_job, table = _job(), dict[bytes, bytes]()
    _fold(clean_job, [_record(clean_job, ev) for ev in events], table)

    job = make_job(_FailingCommit)
    victim = events[57]
    job.victim = victim.user_id.encode()
    batches = _Batches(job, {})
    # Every record of the victim fails alone; everyone else's events are all applied.
    await batches._fold_or_split([_record(job, ev) for ev in events])
    got = batches.table.data
    assert dict(got.items()) == {k: v for k, v in table.items() if k != job.victim}
    victims = [ev.SerializeToString() for ev in events if ev.user_id == victim.user_id]
    assert sorted(d.record.value for d in batches.dead) == sorted(victims)
    assert all("commit bug" in d.reason for d in batches.dead)


def _record(job: FeatureJob, ev: Any) -> Record:
    key = ev.user_id.encode()
    return Record(job.partition_of(key), ev.SerializeToString(), key=key)
