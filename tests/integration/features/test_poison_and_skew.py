"""Records from the future and poison records, on the real Kafka, Redis and Cassandra.

A burst of far-future events (a client clock a day ahead, written to Kafka past the ingest API)
must change nobody's features, sessions or trending lists, before and after a restart; a state
that an earlier worker let be poisoned must heal; records that cannot be processed go to the
dead-letter topic with their reason while the worker keeps going, and a restart over them does
not crash.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import murmur2
from redis.asyncio import Redis

from recsys.clients.kafka import kafka_producer
from recsys.events.v1 import events_pb2
from recsys_features.trending_store import TrendingStore
from tests.features_support import (
    EXPECTED_U1,
    T0,
    create_topics,
    event,
    last_event_ms,
    produce,
    running_worker,
    scripted_u1,
    wait_for,
    workload,
)
from tests.integration.features.conftest import FeatureEnv, free_port
from tests.integration.features.runs import (
    cassandra_dump,
    metric,
    read_topic,
    ready,
    redis_dump,
    run_env,
    scrape,
    wait_for_equal_trending,
    wait_until_done,
)

pytestmark = pytest.mark.integration


def _future_burst(users: list[str], ahead: timedelta) -> list[events_pb2.Event]:
    """Plays, completions and views stamped ``ahead`` of the real clock."""
    at = datetime.now(UTC) + ahead - T0
    return [
        event(f"future-{u}-{i}", kind, at + timedelta(minutes=i), user=u, title="tt_doc")
        for u in users
        for i, kind in enumerate(["play", "complete", "view", "play"])
    ]


async def _own_topics(fe: FeatureEnv, env: dict[str, str], name: str) -> dict[str, str]:
    """Late, session and dead-letter topics of one run (to compare runs' outputs)."""
    topics = {
        kind: f"test.{fe.unique}.{name}.{kind}" for kind in ("events", "late", "sessions", "dlq")
    }
    await create_topics(fe.settings, list(topics.values()), 3)
    env["RECSYS_FEATURES__EVENTS_TOPIC"] = topics["events"]
    env["RECSYS_FEATURES__LATE_TOPIC"] = topics["late"]
    env["RECSYS_FEATURES__SESSIONS_TOPIC"] = topics["sessions"]
    env["RECSYS_FEATURES__DEAD_LETTER_TOPIC"] = topics["dlq"]
    return topics


async def _sessions(fe: FeatureEnv, topic: str, count: int) -> dict[str, Any]:
    records = await read_topic(fe.settings, topic, group=f"r-{time.time_ns()}", count=count)
    return {s["session_id"]: s for s in (orjson.loads(r.value) for r in records)}


async def test_far_future_events_change_nobody_elses_features_sessions_or_trending(
    feature_env: FeatureEnv, redis: Redis, tmp_path: Path
) -> None:
    fe = feature_env
    events = workload(users=40, per_user=30)
    users = sorted({ev.user_id for ev in events})
    half = len(events) // 2
    burst = _future_burst(["w003", "w017", "outsider"], timedelta(hours=23))
    runs = {name: run_env(fe, tmp_path, name, fe.settings) for name in ("clean", "attacked")}
    topics = {name: await _own_topics(fe, env, name) for name, env in runs.items()}
    await produce(fe.settings, topics["clean"]["events"], events)
    await produce(
        fe.settings, topics["attacked"]["events"], events[:300] + burst + events[300:half]
    )
    port = free_port()
    attacked_env = {**runs["attacked"], "RECSYS_METRICS__PORT": str(port)}
    expected_first = last_event_ms(events[:half])

    with running_worker(attacked_env, tmp_path / "attacked-1.log") as proc:
        await wait_until_done(
            fe, redis, runs["attacked"], expected_first, name="attacked", proc=proc
        )
        first_life = await scrape(port)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    # The second half after a restart (the restored states and watermarks are clean too).
    await produce(fe.settings, topics["attacked"]["events"], events[half:])
    expected = last_event_ms(events)
    with (
        running_worker(attacked_env, tmp_path / "attacked-2.log") as attacked,
        running_worker(runs["clean"], tmp_path / "clean.log") as clean,
    ):
        for name, p in (("clean", clean), ("attacked", attacked)):
            await wait_until_done(fe, redis, runs[name], expected, name=name, proc=p)
        prefixes = [runs[n]["RECSYS_REDIS__KEY_PREFIX"] for n in ("clean", "attacked")]
        trending = await wait_for_equal_trending(redis, prefixes)

    # Windows end at each partition's event time (T0's day here), so the lists hold the
    # workload's plays; a future watermark would have emptied them.
    assert trending["trending_titles_24h"]
    clean_prefix, attacked_prefix = prefixes
    clean_redis = await redis_dump(redis, clean_prefix, users)
    assert await redis_dump(redis, attacked_prefix, users) == clean_redis
    keyspaces = [runs[n]["RECSYS_CASSANDRA__KEYSPACE"] for n in ("clean", "attacked")]
    assert await cassandra_dump(fe.client, keyspaces[1], users) == await cassandra_dump(
        fe.client, keyspaces[0], users
    )
    assert await redis.exists(f"{attacked_prefix}:user:outsider:rt") == 0

    # The same sessions were closed (none by a watermark in the future).
    clean_sessions = await _sessions(fe, topics["clean"]["sessions"], 1)
    count = len(clean_sessions)
    assert count > 40
    assert await _sessions(fe, topics["attacked"]["sessions"], count) == await _sessions(
        fe, topics["clean"]["sessions"], count
    )

    # Every future event is a dead letter, with its reason and where it came from.
    dead = await read_topic(fe.settings, topics["attacked"]["dlq"], group="d", count=len(burst))
    assert sorted(r.value for r in dead) == sorted(ev.SerializeToString() for ev in burst)
    for record in dead:
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["reason"].startswith("future: occurred_at is ")
        assert headers["source.topic"] == topics["attacked"]["events"]
        assert int(headers["source.partition"]) == _partition(record.key)
        assert int(headers["source.offset"]) >= 0
    assert metric(first_life, 'recsys_features_dead_letters_total{reason="future"}') == len(burst)
    assert metric(first_life, 'recsys_features_events_total{outcome="future"}') == len(burst)


def _partition(key: bytes) -> int:
    """The partition (of 3) the producer's default partitioner gives ``key``."""
    return (int(murmur2(key)) & 0x7FFFFFFF) % 3


def _recent(events: list[events_pb2.Event]) -> list[events_pb2.Event]:
    """``events`` moved in time so the newest is an hour old (trending windows hold them)."""
    newest = max(ev.occurred_at.ToDatetime(tzinfo=UTC) for ev in events)
    shift = datetime.now(UTC) - timedelta(hours=1) - newest
    moved = []
    for ev in events:
        copy = events_pb2.Event()
        copy.CopyFrom(ev)
        copy.occurred_at.FromDatetime(ev.occurred_at.ToDatetime(tzinfo=UTC) + shift)
        moved.append(copy)
    return moved


async def test_states_poisoned_by_an_unbounded_worker_heal_on_restart(
    feature_env: FeatureEnv, redis: Redis, tmp_path: Path
) -> None:
    fe = feature_env
    events = _recent(workload(users=40, per_user=16))  # 5 h of events, ending an hour ago
    half = len(events) // 2
    runs = {name: run_env(fe, tmp_path, name, fe.settings) for name in ("clean", "poisoned")}
    topics = {name: await _own_topics(fe, env, name) for name, env in runs.items()}
    burst = _future_burst(["w003", "outsider"], timedelta(hours=23))
    await produce(fe.settings, topics["clean"]["events"], events)
    await produce(fe.settings, topics["poisoned"]["events"], events[:half] + burst)
    prefix = runs["poisoned"]["RECSYS_REDIS__KEY_PREFIX"]

    # A worker as they were before the skew bound (two days of "skew" accepted).
    unbounded = {**runs["poisoned"], "RECSYS_FEATURES__MAX_CLOCK_SKEW_S": str(2 * 86_400)}
    future_ms = last_event_ms(burst)["outsider"]
    trending = TrendingStore(redis, prefix, partitions=3)
    partials = [trending.key("US", "trending_titles_24h", p) for p in range(3)]
    victims = {partials[_partition(b"outsider")], partials[_partition(b"w003")]}
    assert len(victims) < 3
    with running_worker(unbounded, tmp_path / "poisoned-1.log") as proc:

        async def poisoned() -> bool | None:
            stored = await redis.hget(f"{prefix}:user:outsider:rt", "_event_time_ms")
            # The future watermarks of the attackers' partitions expired every real play there:
            # only the attackers' own future play is left, while the other partition's counts
            # are the workload's.
            written = [await redis.exists(k) for k in partials if k not in victims]
            if stored != str(future_ms).encode() or not all(written):
                return None
            left = [await redis.zrange(k, 0, -1, withscores=True) for k in victims]
            return True if all(x == [(b"tt_doc", 1.0)] for x in left) else None

        await wait_for(poisoned, what="the poisoned state", proc=proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    await produce(fe.settings, topics["poisoned"]["events"], events[half:])
    port = free_port()
    healing = {**runs["poisoned"], "RECSYS_METRICS__PORT": str(port)}
    expected = last_event_ms(events)
    with (
        running_worker(healing, tmp_path / "poisoned-2.log") as healed,
        running_worker(runs["clean"], tmp_path / "clean.log") as clean,
    ):
        await wait_for(lambda: ready(port), what="the healing worker", proc=healed)
        others = {u: ms for u, ms in expected.items() if u != "w003"}
        # w003's own later events are applied again (its watermark healed): its newest event
        # time is the real one, not the future one.
        for name, p in (("clean", clean), ("poisoned", healed)):
            await wait_until_done(fe, redis, runs[name], expected, name=name, proc=p)
        prefixes = [runs[n]["RECSYS_REDIS__KEY_PREFIX"] for n in ("clean", "poisoned")]
        lists = await wait_for_equal_trending(redis, prefixes)
        metrics = await scrape(port)

    assert lists["trending_titles_24h"]
    for key in victims:  # the poisoned partitions' counts came back
        assert len(await redis.zrange(key, 0, -1)) > 1
    clean_redis = await redis_dump(redis, prefixes[0], list(others))
    assert await redis_dump(redis, prefixes[1], list(others)) == clean_redis
    assert metric(metrics, "recsys_features_states_healed_total") >= 2.0  # w003, outsider
    stored = await redis.hget(f"{prefix}:user:outsider:rt", "_event_time_ms")
    assert stored is not None
    assert int(stored) < time.time() * 1000 + 300_000  # healed in the store as well


async def test_poison_records_are_dead_letters_and_a_restart_over_them_does_not_crash(
    feature_env: FeatureEnv, redis: Redis, tmp_path: Path
) -> None:
    fe = feature_env
    good = scripted_u1()
    nan = event("p1", "pause", T0 - T0, user="u9", title="tt_drama")
    nan.pause.watched_sec = float("nan")
    bad_country = event("p2", "view", T0 - T0, user="u9", country="XX-LONG")
    long_id = event("p3", "view", T0 - T0, user="u" * 100)
    wrong_key = event("p4", "view", T0 - T0, user="u1")
    other = next(k for k in (b"a", b"b", b"c", b"d") if _partition(k) != _partition(b"u1"))
    poison: list[tuple[bytes, bytes]] = [
        (b"u9", b"\xff\xfe not a protobuf"),
        (b"u9", nan.SerializeToString()),
        (b"u9", bad_country.SerializeToString()),
        (b"u" * 100, long_id.SerializeToString()),
        (other, wrong_key.SerializeToString()),  # u1's event on another member's partition
    ]
    producer = kafka_producer(fe.settings.kafka)
    await producer.start()
    try:
        for ev in good[:5]:
            await producer.send(fe.events_topic, ev.SerializeToString(), key=b"u1")
        for key, value in poison:
            await producer.send(fe.events_topic, value, key=key)
        for ev in good[5:]:
            await producer.send(fe.events_topic, ev.SerializeToString(), key=b"u1")
        await producer.flush()
    finally:
        await producer.stop()

    port = free_port()
    env = {**fe.env, "RECSYS_METRICS__PORT": str(port)}
    last_u1 = int((T0 + timedelta(minutes=25)).timestamp() * 1000)
    with running_worker(env, fe.log_path) as proc:
        await wait_until_done(fe, redis, fe.env, {"u1": last_u1}, name="poisoned", proc=proc)
        dead = await read_topic(fe.settings, fe.dead_letter_topic, group="d1", count=len(poison))
        metrics = await scrape(port)
        proc.send_signal(signal.SIGKILL)  # before a commit covers the poison records
        proc.wait()
    # A restart re-reads them (at least once) and keeps going instead of crashing again.
    with running_worker(env, fe.log_path) as proc:
        await wait_for(lambda: ready(port), what="the restarted worker", proc=proc)

    fields, watched = (await redis_dump(redis, fe.key_prefix, ["u1"]))["u1"]
    stored = {k.decode(): orjson.loads(v) for k, v in fields.items() if not k.startswith(b"_")}
    stored["recently_watched_title_ids"] = [t.decode() for t in watched]
    assert stored == EXPECTED_U1  # the poison around u1's events changed nothing
    reasons = Counter(dict(r.headers)["reason"].decode().split(":")[0] for r in dead)
    assert reasons["invalid"] >= len(poison)
    by_value = {r.value: dict(r.headers)["reason"].decode() for r in dead}
    assert "not a recsys.events.v1.Event" in by_value[b"\xff\xfe not a protobuf"]
    assert "pause.watched_sec is nan" in by_value[nan.SerializeToString()]
    assert "country 'XX-LONG'" in by_value[bad_country.SerializeToString()]
    assert "user_id 'uuuu" in by_value[long_id.SerializeToString()]
    assert "belongs to partition" in by_value[wrong_key.SerializeToString()]
    assert metric(metrics, 'recsys_features_dead_letters_total{reason="invalid"}') >= len(poison)
