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
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.features_support import (
    create_topics,
    last_event_ms,
    produce,
    running_worker,
    wait_for,
    workload,
)
from tests.integration.features.conftest import FeatureEnv, free_port
from tests.integration.features.runs import (
    all_done,
    cassandra_dump,
    ready,
    redis_dump,
    run_env,
    trickle,
    wait_for_equal_trending,
    wait_until_done,
)

pytestmark = pytest.mark.integration


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

    runs = {name: run_env(fe, tmp_path, name, fe.settings) for name in ("clean", "crash", "two")}
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
            await wait_for(lambda port=port: ready(port), what="two workers joined", proc=proc)  # type: ignore[misc]

        # (b) first life: process the first half, never commit an offset, die without warning.
        crash_env = {**runs["crash"], "RECSYS_FEATURES__COMMIT_INTERVAL_S": "600"}
        with running_worker(crash_env, tmp_path / "crash-1.log") as proc:
            await wait_for(
                lambda: all_done(fe.client, redis, runs["crash"], expected_first),
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
                await wait_until_done(fe, redis, runs[name], expected_all, name=name, proc=proc)
            # Trending counts are per partition, written by whichever worker owns it: the three
            # runs' merged lists must agree (and not be empty).
            trending = await wait_for_equal_trending(
                redis, [prefixes[n] for n in ("clean", "crash", "two")]
            )
            assert trending["trending_titles_24h"]

    clean_redis = await redis_dump(redis, prefixes["clean"], users)
    clean_cassandra = await cassandra_dump(fe.client, keyspaces["clean"], users)
    assert all(fields for fields, _ in clean_redis.values())
    for name in ("crash", "two"):
        assert await redis_dump(redis, prefixes[name], users) == clean_redis, name
        assert await cassandra_dump(fe.client, keyspaces[name], users) == clean_cassandra, name


async def test_workers_joining_and_leaving_a_busy_group_equal_a_clean_run(
    feature_env: FeatureEnv, redis: Redis, tmp_path: Path
) -> None:
    fe = feature_env
    events = workload(users=60, per_user=40)
    users = sorted({ev.user_id for ev in events})
    expected = last_event_ms(events)
    runs = {name: run_env(fe, tmp_path, name, fe.settings) for name in ("clean", "busy")}
    ports = [free_port(), free_port()]
    joined, left = asyncio.Event(), asyncio.Event()

    async def gates(start: int) -> None:
        # Past half of the stream, wait for the join; past three quarters, for the leave: so
        # every change of the group happens while events are still arriving.
        for share, gate in ((0.5, joined), (0.75, left)):
            if start >= share * len(events):
                await gate.wait()

    def busy(worker: int) -> dict[str, str]:
        # Their logs say what was dropped or committed around each rebalance.
        return {
            **runs["busy"],
            "RECSYS_METRICS__PORT": str(ports[worker]),
            "RECSYS_LOG__LEVEL": "INFO",
        }

    with running_worker(busy(0), tmp_path / "busy-1.log") as first:
        await wait_for(lambda: ready(ports[0]), what="the first worker", proc=first)
        feeding = asyncio.create_task(
            trickle(fe.settings, fe.events_topic, events, before_chunk=gates)
        )
        with running_worker(busy(1), tmp_path / "busy-2.log") as second:
            # The join rebalances the group while the first worker folds the trickle.
            await wait_for(lambda: ready(ports[1]), what="the second worker joined", proc=second)
            joined.set()
            first.terminate()  # leaves the group with events in flight
            first.wait(timeout=60)
            left.set()
            await feeding
            with running_worker(runs["clean"], tmp_path / "clean.log") as clean:
                for name, proc in (("clean", clean), ("busy", second)):
                    await wait_until_done(fe, redis, runs[name], expected, name=name, proc=proc)
                await wait_for_equal_trending(
                    redis, [runs[n]["RECSYS_REDIS__KEY_PREFIX"] for n in ("clean", "busy")]
                )

    prefixes = {name: env["RECSYS_REDIS__KEY_PREFIX"] for name, env in runs.items()}
    keyspaces = {name: env["RECSYS_CASSANDRA__KEYSPACE"] for name, env in runs.items()}
    clean_redis = await redis_dump(redis, prefixes["clean"], users)
    assert all(fields for fields, _ in clean_redis.values())
    assert await redis_dump(redis, prefixes["busy"], users) == clean_redis
    assert await cassandra_dump(fe.client, keyspaces["busy"], users) == await cassandra_dump(
        fe.client, keyspaces["clean"], users
    )
