"""Crash recovery and scale-out give exactly the features of one clean run.

One mixed workload (duplicates, out-of-order events inside the grace period, late events) goes to
one topic; independent consumer groups, each with its own Redis prefix and Cassandra keyspace,
process it: (a) one worker, clean; (b) one worker SIGKILLed after the first half, before it commits
offsets, then restarted; (c) two workers sharing the partitions (joined before their copy of the
stream starts). Their stored features and trending lists must be equal, apart from the
wall-clock ``_written_at_ms``.

A second test changes the group while events flow: a worker joins a busy group, then the first
one leaves it; the result must again equal a clean run.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from recsys.clients.kafka import kafka_producer
from recsys.config import Settings
from recsys.events.v1 import events_pb2
from recsys_features.cassandra_store import CassandraFeatureStore
from recsys_features.redis_store import WRITTEN_AT_FIELD
from recsys_features.trending import WINDOWS
from recsys_features.trending_store import TrendingStore
from tests.features_support import (
    create_topics,
    last_event_ms,
    produce,
    running_worker,
    wait_for,
    worker_env,
    workload,
)
from tests.integration.features.conftest import FeatureEnv, free_port, make_keyspace

pytestmark = pytest.mark.integration

Stored = dict[str, Any]


async def _redis_dump(redis: Redis, prefix: str, users: list[str]) -> Stored:
    out: Stored = {}
    for user in users:
        fields = await redis.hgetall(f"{prefix}:user:{user}:rt")
        fields.pop(WRITTEN_AT_FIELD.encode(), None)
        watched = await redis.lrange(f"{prefix}:user:{user}:watched", 0, -1)
        out[user] = (fields, watched)
    return out


async def _cassandra_dump(fe: FeatureEnv, keyspace: str, users: list[str]) -> Stored:
    store = CassandraFeatureStore(fe.client, keyspace)
    out: Stored = {}
    for user in users:
        rows = await store.read(user)
        out[user] = {name: (f.value, f.event_time_ms) for name, f in rows.items()}
    return out


def _run_env(fe: FeatureEnv, tmp_path: Path, name: str, settings: Settings) -> dict[str, str]:
    keyspace = f"{fe.keyspace}_{name}"
    make_keyspace(settings, keyspace).close()
    env = worker_env(
        settings,
        unique=f"{fe.unique}-{name}",
        keyspace=keyspace,
        key_prefix=f"{fe.key_prefix}:{name}",
        data_dir=tmp_path / name,
    )
    # All runs read the one topic produced below; each is its own consumer group.
    env["RECSYS_FEATURES__EVENTS_TOPIC"] = fe.events_topic
    env["RECSYS_FEATURES__LATE_TOPIC"] = fe.late_topic
    env["RECSYS_FEATURES__SESSIONS_TOPIC"] = fe.sessions_topic
    return env


async def _trending_agrees(redis: Redis, prefixes: list[str]) -> dict[str, Any] | None:
    lists = []
    for prefix in prefixes:
        store = TrendingStore(redis, prefix, partitions=3)
        lists.append({w.feature: await store.read("US", w.feature, limit=500) for w in WINDOWS})
    return lists[0] if all(x == lists[0] for x in lists) else None


async def _lagging(
    fe: FeatureEnv, redis: Redis, run: dict[str, str], expected: dict[str, int]
) -> dict[str, tuple[int | None, int]]:
    """Members whose newest event is not yet reflected in both stores of ``run``:
    member -> (stored event time, expected event time)."""
    prefix, keyspace = run["RECSYS_REDIS__KEY_PREFIX"], run["RECSYS_CASSANDRA__KEYSPACE"]
    pipe = redis.pipeline(transaction=False)
    for user in expected:
        pipe.hget(f"{prefix}:user:{user}:rt", "_event_time_ms")
    got = await pipe.execute()
    hot = {u: None if g is None else int(g) for u, g in zip(expected, got, strict=True)}
    lagging: dict[str, tuple[int | None, int]] = {
        u: (t, expected[u]) for u, t in hot.items() if t != expected[u]
    }
    if lagging:
        return lagging
    durable = await _cassandra_dump(fe, keyspace, list(expected))
    for user, ms in expected.items():
        times = {t for _, t in durable[user].values()}
        if times != {ms}:
            lagging[user] = (max(times) if times else None, ms)
    return lagging


async def _ready(port: int) -> bool | None:
    try:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    except httpx.HTTPError:
        return None
    return True if "recsys_features_ready 1.0" in text else None


async def _all_done(
    fe: FeatureEnv, redis: Redis, run: dict[str, str], expected: dict[str, int]
) -> bool | None:
    """Every member's newest event is reflected in both stores of ``run``."""
    return None if await _lagging(fe, redis, run, expected) else True


async def _wait_until_done(
    fe: FeatureEnv,
    redis: Redis,
    run: dict[str, str],
    expected: dict[str, int],
    *,
    name: str,
    proc: subprocess.Popen[Any],
) -> None:
    """Wait for every member's newest event in both stores of ``run``; on timeout, say which
    members lag."""
    try:
        await wait_for(
            lambda: _all_done(fe, redis, run, expected), limit_s=120, what=f"run {name}", proc=proc
        )
    except AssertionError as exc:
        lagging = await _lagging(fe, redis, run, expected)
        raise AssertionError(f"{exc}; (stored, expected) event times: {lagging}") from None


async def test_crash_restart_and_two_workers_equal_a_clean_run(
    feature_env: FeatureEnv, redis: Redis, tmp_path: Path
) -> None:
    fe = feature_env
    events = workload(users=60, per_user=40)
    half = len(events) // 2
    first, second = events[:half], events[half:]
    users = sorted({ev.user_id for ev in events})
    expected_all = last_event_ms(events)
    expected_first = last_event_ms(first)
    await produce(fe.settings, fe.events_topic, first)

    runs = {name: _run_env(fe, tmp_path, name, fe.settings) for name in ("clean", "crash", "two")}
    prefixes = {name: env["RECSYS_REDIS__KEY_PREFIX"] for name, env in runs.items()}
    keyspaces = {name: env["RECSYS_CASSANDRA__KEYSPACE"] for name, env in runs.items()}

    # (c) two workers join their group before their stream starts, so they share the
    # partitions from the first event on (a copy of the stream on a topic of their own).
    two_topic = f"{fe.events_topic}-two"
    await create_topics(fe.settings, [two_topic], 3)
    runs["two"]["RECSYS_FEATURES__EVENTS_TOPIC"] = two_topic
    ports = [free_port(), free_port()]
    with (
        running_worker(
            {**runs["two"], "RECSYS_METRICS__PORT": str(ports[0])}, tmp_path / "two-1.log"
        ) as two_a,
        running_worker(
            {**runs["two"], "RECSYS_METRICS__PORT": str(ports[1])}, tmp_path / "two-2.log"
        ) as two_b,
    ):
        for port, proc in zip(ports, (two_a, two_b), strict=True):
            await wait_for(lambda port=port: _ready(port), what="two workers joined", proc=proc)  # type: ignore[misc]

        # (b) first life: process the first half, never commit an offset, die without warning.
        crash_env = {**runs["crash"], "RECSYS_FEATURES__COMMIT_INTERVAL_S": "600"}
        with running_worker(crash_env, tmp_path / "crash-1.log") as proc:
            await wait_for(
                lambda: _all_done(fe, redis, runs["crash"], expected_first),
                what="the first half",
                proc=proc,
            )
            proc.send_signal(signal.SIGKILL)
            proc.wait()

        await produce(fe.settings, fe.events_topic, second)
        await produce(fe.settings, two_topic, events)

        # (b) second life and (a) the clean run on the full stream, beside (c).
        with (
            running_worker(runs["crash"], tmp_path / "crash-2.log") as crash,
            running_worker(runs["clean"], tmp_path / "clean.log") as clean,
        ):
            for name, proc in (("crash", crash), ("clean", clean), ("two", two_a), ("two", two_b)):
                await _wait_until_done(fe, redis, runs[name], expected_all, name=name, proc=proc)
            # Trending counts are per partition, written by whichever worker owns it: the three
            # runs' merged lists must agree (and not be empty).
            trending = await wait_for(
                lambda: _trending_agrees(redis, [prefixes[n] for n in ("clean", "crash", "two")]),
                what="equal trending lists",
            )
            assert trending["trending_titles_24h"]

    clean_redis = await _redis_dump(redis, prefixes["clean"], users)
    clean_cassandra = await _cassandra_dump(fe, keyspaces["clean"], users)
    assert all(fields for fields, _ in clean_redis.values())
    for name in ("crash", "two"):
        assert await _redis_dump(redis, prefixes[name], users) == clean_redis, name
        assert await _cassandra_dump(fe, keyspaces[name], users) == clean_cassandra, name


async def _trickle(
    settings: Settings,
    topic: str,
    events: Sequence[events_pb2.Event],
    gates: Sequence[tuple[float, asyncio.Event]],
    *,
    chunk: int = 15,
    pause_s: float = 0.1,
) -> None:
    """Send ``events`` a chunk every ``pause_s``; past each gate's share of the stream, wait for
    its event first (so every change of the group happens while events are still arriving)."""
    producer = kafka_producer(settings.kafka)
    await producer.start()
    try:
        for start in range(0, len(events), chunk):
            for share, gate in gates:
                if start >= share * len(events):
                    await gate.wait()
            for ev in events[start : start + chunk]:
                await producer.send(topic, ev.SerializeToString(), key=ev.user_id.encode())
            await producer.flush()
            await asyncio.sleep(pause_s)
    finally:
        await producer.stop()


async def test_workers_joining_and_leaving_a_busy_group_equal_a_clean_run(
    feature_env: FeatureEnv, redis: Redis, tmp_path: Path
) -> None:
    fe = feature_env
    events = workload(users=60, per_user=40)
    users = sorted({ev.user_id for ev in events})
    expected = last_event_ms(events)
    runs = {name: _run_env(fe, tmp_path, name, fe.settings) for name in ("clean", "busy")}
    ports = [free_port(), free_port()]
    joined, left = asyncio.Event(), asyncio.Event()

    def busy(worker: int) -> dict[str, str]:
        # Their logs say what was dropped or committed around each rebalance.
        return {
            **runs["busy"],
            "RECSYS_METRICS__PORT": str(ports[worker]),
            "RECSYS_LOG__LEVEL": "INFO",
        }

    with running_worker(busy(0), tmp_path / "busy-1.log") as first:
        await wait_for(lambda: _ready(ports[0]), what="the first worker", proc=first)
        feeding = asyncio.create_task(
            _trickle(fe.settings, fe.events_topic, events, [(0.5, joined), (0.75, left)])
        )
        with running_worker(busy(1), tmp_path / "busy-2.log") as second:
            # The join rebalances the group while the first worker folds the trickle.
            await wait_for(lambda: _ready(ports[1]), what="the second worker joined", proc=second)
            joined.set()
            first.terminate()  # leaves the group with events in flight
            first.wait(timeout=60)
            left.set()
            await feeding
            with running_worker(runs["clean"], tmp_path / "clean.log") as clean:
                for name, proc in (("clean", clean), ("busy", second)):
                    await _wait_until_done(fe, redis, runs[name], expected, name=name, proc=proc)
                await wait_for(
                    lambda: _trending_agrees(
                        redis, [runs[n]["RECSYS_REDIS__KEY_PREFIX"] for n in ("clean", "busy")]
                    ),
                    what="equal trending lists",
                )

    prefixes = {name: env["RECSYS_REDIS__KEY_PREFIX"] for name, env in runs.items()}
    keyspaces = {name: env["RECSYS_CASSANDRA__KEYSPACE"] for name, env in runs.items()}
    clean_redis = await _redis_dump(redis, prefixes["clean"], users)
    assert all(fields for fields, _ in clean_redis.values())
    assert await _redis_dump(redis, prefixes["busy"], users) == clean_redis
    assert await _cassandra_dump(fe, keyspaces["busy"], users) == await _cassandra_dump(
        fe, keyspaces["clean"], users
    )
