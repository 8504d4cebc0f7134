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
from tests.features_support import event, minutes


class _Store:
    async def write(self, snapshots: Sequence[FeatureSnapshot], *, written_at_ms: int) -> None:
        pass


def _job() -> FeatureJob:
    store: Any = _Store()
    return FeatureJob(
        Settings(),
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
