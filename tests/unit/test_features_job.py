"""FeatureJob's bookkeeping between batches: idle sessions and recovery, without Kafka."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from recsys.config import Settings
from recsys_features.app import FeatureJob
from recsys_features.catalog import DictCatalog
from recsys_features.fold import Record
from recsys_features.metrics import FeatureMetrics
from recsys_features.snapshot import FeatureSnapshot
from tests.features_support import event, minutes, workload


class _Store:
    async def write(self, snapshots: Sequence[FeatureSnapshot], *, written_at_ms: int) -> None:
        pass


def _job(**features: Any) -> FeatureJob:
    store: Any = _Store()
    settings = Settings()
    settings.features = settings.features.model_copy(update=features)
    return FeatureJob(
        settings,
        catalog=DictCatalog({}),
        redis_store=store,
        cassandra_store=store,
        trending_store=store,
        metrics=FeatureMetrics.create(registry=CollectorRegistry()),
    )


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
        job.fold([Record(partition, ev.SerializeToString()) for ev in events], table)

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
    result = job.fold(
        [Record(partition, event("a3", "view", minutes(120), user=a).SerializeToString())], table
    )
    assert result.sessions == []


def test_recovered_states_rebuild_the_idle_session_index() -> None:
    job = _job()
    a, b = _same_partition_users(job, 2)
    partition = job.partition_of(a.encode())
    table: dict[bytes, bytes] = {}
    job.fold(
        [
            Record(partition, event("a1", "view", minutes(0), user=a).SerializeToString()),
            Record(partition, event("b1", "view", minutes(60), user=b).SerializeToString()),
        ],
        table,
    )
    recovered = _job()
    assert recovered.rematerialize(table.items()) == 2
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
            job.fold(records[start : start + 25], table)
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
        job.fold([Record(partition, ev.SerializeToString())], table)
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
    job.rematerialize([(key, older)])  # recovery after a rebalance that kept the partition
    assert fold("e5", 4) == 3
