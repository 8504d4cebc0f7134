"""Runs of the feature worker compared with each other: environments per run, store dumps,
waits until a run has caught up, trending lists. Shared by the recovery, skew, poison and
outage tests."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis

from recsys.clients.cassandra import CassandraClient
from recsys.clients.kafka import kafka_consumer, kafka_producer
from recsys.config import Settings
from recsys.events.v1 import events_pb2
from recsys_features.cassandra_store import CassandraFeatureStore
from recsys_features.redis_store import WRITTEN_AT_FIELD
from recsys_features.trending import WINDOWS
from recsys_features.trending_store import TrendingStore
from tests.features_support import wait_for, worker_env
from tests.integration.features.conftest import FeatureEnv, make_keyspace

Stored = dict[str, Any]


async def redis_dump(redis: Redis, prefix: str, users: list[str]) -> Stored:
    out: Stored = {}
    for user in users:
        fields = await redis.hgetall(f"{prefix}:user:{user}:rt")
        fields.pop(WRITTEN_AT_FIELD.encode(), None)
        watched = await redis.lrange(f"{prefix}:user:{user}:watched", 0, -1)
        out[user] = (fields, watched)
    return out


async def cassandra_dump(client: CassandraClient, keyspace: str, users: list[str]) -> Stored:
    store = CassandraFeatureStore(client, keyspace)
    out: Stored = {}
    for user in users:
        rows = await store.read(user)
        out[user] = {name: (f.value, f.event_time_ms) for name, f in rows.items()}
    return out


def run_env(fe: FeatureEnv, tmp_path: Path, name: str, settings: Settings) -> dict[str, str]:
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
    env["RECSYS_FEATURES__DEAD_LETTER_TOPIC"] = fe.dead_letter_topic
    return env


async def trending_lists(redis: Redis, prefixes: list[str]) -> list[dict[str, Any]]:
    lists = []
    for prefix in prefixes:
        store = TrendingStore(redis, prefix, partitions=3)
        lists.append({w.feature: await store.read("US", w.feature, limit=500) for w in WINDOWS})
    return lists


async def trending_agrees(redis: Redis, prefixes: list[str]) -> dict[str, Any] | None:
    lists = await trending_lists(redis, prefixes)
    return lists[0] if all(x == lists[0] for x in lists) else None


async def wait_for_equal_trending(redis: Redis, prefixes: list[str]) -> dict[str, Any]:
    """The runs' merged trending lists, once they agree; on timeout, say how they differ."""
    try:
        return await wait_for(lambda: trending_agrees(redis, prefixes), what="equal trending lists")
    except AssertionError as exc:
        lists = await trending_lists(redis, prefixes)
        raise AssertionError(f"{exc}: {dict(zip(prefixes, lists, strict=True))}") from None


async def lagging(
    cassandra: CassandraClient, redis: Redis, run: dict[str, str], expected: dict[str, int]
) -> dict[str, tuple[int | None, int]]:
    """Members whose newest event is not yet reflected in both stores of ``run`` (read with
    these clients): member -> (stored event time, expected event time)."""
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
    durable = await cassandra_dump(cassandra, keyspace, list(expected))
    for user, ms in expected.items():
        times = {t for _, t in durable[user].values()}
        if times != {ms}:
            lagging[user] = (max(times) if times else None, ms)
    return lagging


async def ready(port: int) -> bool | None:
    try:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    except httpx.HTTPError:
        return None
    return True if "recsys_features_ready 1.0" in text else None


async def all_done(
    cassandra: CassandraClient, redis: Redis, run: dict[str, str], expected: dict[str, int]
) -> bool | None:
    """Every member's newest event is reflected in both stores of ``run``."""
    return None if await lagging(cassandra, redis, run, expected) else True


async def wait_until_done(
    fe: FeatureEnv,
    redis: Redis,
    run: dict[str, str],
    expected: dict[str, int],
    *,
    name: str,
    proc: subprocess.Popen[Any],
    cassandra: CassandraClient | None = None,
    limit_s: float = 120,
) -> None:
    """Wait for every member's newest event in both stores of ``run`` (Cassandra read through
    ``cassandra``, default the shared one); on timeout, say which members lag."""
    client = cassandra or fe.client
    try:
        await wait_for(
            lambda: all_done(client, redis, run, expected),
            limit_s=limit_s,
            what=f"run {name}",
            proc=proc,
        )
    except AssertionError as exc:
        behind = await lagging(client, redis, run, expected)
        raise AssertionError(f"{exc}; (stored, expected) event times: {behind}") from None


async def read_topic(
    settings: Settings, topic: str, *, group: str, count: int, timeout_s: float = 60
) -> list[Any]:
    """The first ``count`` records of ``topic`` (aiokafka ConsumerRecords, all partitions)."""
    consumer: AIOKafkaConsumer = kafka_consumer(settings.kafka, topic, group_id=group)
    await consumer.start()
    records: list[Any] = []
    try:
        while len(records) < count:
            batch = await consumer.getmany(timeout_ms=int(timeout_s * 1000))
            assert batch, f"{len(records)} records on {topic} after {timeout_s} s, not {count}"
            for messages in batch.values():
                records.extend(messages)
    finally:
        await consumer.stop()
    return records


async def scrape(port: int) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{port}/metrics")).text


def metric(text: str, name: str) -> float:
    """A sample's value from Prometheus text (``name`` with its labels, as exported)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not exported")


async def trickle(
    settings: Settings,
    topic: str,
    events: Sequence[events_pb2.Event],
    *,
    before_chunk: Callable[[int], Awaitable[None]] | None = None,
    chunk: int = 15,
    pause_s: float = 0.1,
) -> None:
    """Send ``events`` keyed by member, a chunk every ``pause_s``; ``before_chunk(start)`` is
    awaited before each chunk (a test holds the stream there while it changes something)."""
    producer = kafka_producer(settings.kafka)
    await producer.start()
    try:
        for start in range(0, len(events), chunk):
            if before_chunk is not None:
                await before_chunk(start)
            for ev in events[start : start + chunk]:
                await producer.send(topic, ev.SerializeToString(), key=ev.user_id.encode())
            await producer.flush()
            await asyncio.sleep(pause_s)
    finally:
        await producer.stop()
