"""The feature stream job end to end on the real Kafka, Redis and Cassandra.

Scripted events with chosen event times go to a per-test topic; a ``recsys-features`` worker
process consumes them; the features it stored are compared with values computed by hand.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from recsys.events.v1 import events_pb2
from recsys_features.cassandra_store import CassandraFeatureStore
from recsys_features.redis_store import RedisFeatureStore
from recsys_features.trending_store import TrendingStore
from tests.features_support import (
    EXPECTED_U1,
    T0,
    event,
    minutes,
    produce,
    running_worker,
    scripted_u1,
    scripted_u2,
    wait_for,
)
from tests.integration.features.conftest import FeatureEnv, free_port
from tests.integration.features.runs import metric, read_topic, scrape

pytestmark = pytest.mark.integration


def _ms(m: float) -> int:
    return int((T0 + minutes(m)).timestamp() * 1000)


async def test_scripted_events_give_hand_computed_features(
    feature_env: FeatureEnv, redis: Redis
) -> None:
    fe = feature_env
    # u4 shares u2's partition (of 3): its event at 12:10 moves that partition's event time
    # more than gap + grace (35 min) past u2's last event (11:30), which closes u2's session.
    u4 = [event("x1", "view", minutes(130), user="u4")]
    await produce(fe.settings, fe.events_topic, scripted_u1() + scripted_u2() + u4)
    port = free_port()
    env = {**fe.env, "RECSYS_METRICS__PORT": str(port)}
    store = RedisFeatureStore(redis, fe.key_prefix)

    async def u1_done() -> dict[str, Any] | None:
        values, event_ms, _ = await store.read("u1")
        # e13 (the last applied event of u1) is a search; all three terms mean all are in.
        terms = values.get("search_terms_last_5min", [])
        return values if event_ms == _ms(25) and len(terms) == 3 else None

    async def u2_done() -> dict[str, Any] | None:
        values, event_ms, _ = await store.read("u2")
        return values if event_ms == _ms(90) else None

    async def u1_durable() -> dict[str, Any] | None:
        # Cassandra is written on its own, slower cadence: wait for u1's final state there.
        stored = await CassandraFeatureStore(fe.client, fe.keyspace).read("u1")
        done = stored and {f.event_time_ms for f in stored.values()} == {_ms(25)}
        return stored if done else None

    trending = TrendingStore(redis, fe.key_prefix, partitions=3)

    async def trending_done() -> list[tuple[str, int]] | None:
        # Every play of both members is inside 24 h; the count is of distinct members.
        top = await trending.read("US", "trending_titles_24h", limit=10)
        return top if len(top) == 5 else None

    with running_worker(env, fe.log_path) as proc:
        u1 = await wait_for(u1_done, what="u1 features", proc=proc)
        u2 = await wait_for(u2_done, what="u2 features", proc=proc)
        stored = await wait_for(u1_durable, what="u1 features in Cassandra", proc=proc)
        top_24h = await wait_for(trending_done, what="trending titles", proc=proc)
        late = [
            (r.key, r.value)
            for r in await read_topic(fe.settings, fe.late_topic, group=f"r-{fe.unique}", count=1)
        ]
        sessions = [
            (r.key, r.value)
            for r in await read_topic(
                fe.settings, fe.sessions_topic, group=f"r-{fe.unique}", count=2
            )
        ]
        metrics = await wait_for(
            lambda: _scraped_when(port, "recsys_features_late_events_total"), what="metrics"
        )

    assert u1 == EXPECTED_U1

    assert u2["session_duration_sec"] == 40 * 60  # 10:50 -> 11:30
    # The only watch time (s4 at 11:00) is exactly 30 min before 11:30: the sliding window
    # (11:00, 11:30] excludes its start, so no genre.
    assert u2["current_genre_last_30min"] == ""
    assert u2["current_device_type"] == "web"
    assert u2["search_terms_last_5min"] == ["docs"]

    # One member each; the late play of tt_doc by u1 (e14) was not applied, so tt_doc counts
    # u2 only, and u1's two plays of tt_drama count once. Ties are ordered by title id.
    assert top_24h == [
        ("tt_action", 1),
        ("tt_comedy", 1),
        ("tt_doc", 1),
        ("tt_drama", 1),
        ("tt_unknown", 1),
    ]

    # The late event went to the late topic untouched, keyed by member.
    assert [(k, events_pb2.Event.FromString(v).event_id) for k, v in late] == [(b"u1", "e14")]

    # The first session of u2 was closed and summarised when s3 proved the 40 min gap; the
    # second when u4's event moved the partition's event time past it (no event of u2 needed).
    assert [(k, orjson.loads(v)) for k, v in sessions] == [
        (
            b"u2",
            {
                "session_id": f"u2:{_ms(0)}",
                "user_id": "u2",
                "start_ms": _ms(0),
                "end_ms": _ms(10),
                "duration_sec": 600,
                "event_count": 2,
            },
        ),
        (
            b"u2",
            {
                "session_id": f"u2:{_ms(50)}",
                "user_id": "u2",
                "start_ms": _ms(50),
                "end_ms": _ms(90),
                "duration_sec": 2400,
                "event_count": 3,
            },
        ),
    ]

    # The durable copy in Cassandra holds the same values (with the same event time, waited for).
    assert {name: f.value for name, f in stored.items()} == EXPECTED_U1

    assert metric(metrics, "recsys_features_duplicates_total") == 1.0
    assert metric(metrics, "recsys_features_late_events_total") == 1.0
    assert metric(metrics, "recsys_features_sessions_closed_total") == 2.0


async def _scraped_when(port: int, name: str) -> str | None:
    try:
        text = await scrape(port)
    except Exception:
        return None
    return text if any(line.startswith(name + " 1.0") for line in text.splitlines()) else None
