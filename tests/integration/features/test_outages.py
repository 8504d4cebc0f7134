"""Redis, Cassandra or Kafka down when the worker starts, and again in the middle of a stream.

Each test runs the dependency under test as a private server (own state directory, free ports;
the shared ones stay up for the rest of the suite): the worker starts while it is down and waits;
it comes up; events trickle in; it goes down mid-stream for a while and comes back. The stored
features and trending lists must then equal those of a clean run on the shared servers, and the
worker must have noticed the outage (its metrics) without dying.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from recsys.clients.cassandra import CassandraClient, connect_cassandra
from recsys.clients.redis import redis_client
from recsys.config import CassandraSettings, InfraSettings, KafkaSettings, RedisSettings, Settings
from recsys.infra import manager
from tests.features_support import (
    create_topics,
    last_event_ms,
    produce,
    running_worker,
    wait_for,
    workload,
)
from tests.integration.features.conftest import FeatureEnv, free_port, make_keyspace
from tests.integration.features.runs import (
    cassandra_dump,
    ready,
    redis_dump,
    run_env,
    scrape,
    trending_lists,
    trickle,
    wait_until_done,
)

pytestmark = pytest.mark.integration

OUTAGE_S = 8.0  # how long the dependency stays down mid-stream


def _quiet(_: str) -> None:
    pass


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _private(infra: Settings, tmp_path: Path, dependency: str) -> Settings:
    """The shared settings with ``dependency`` moved to free ports and a private state dir."""
    update: dict[str, Any] = {
        "infra": InfraSettings(
            state_dir=tmp_path / "private",
            cache_dir=infra.infra.cache_dir,
            start_timeout_s=infra.infra.start_timeout_s,
        )
    }
    if dependency == "redis":
        update["redis"] = RedisSettings(port=_port())
    elif dependency == "cassandra":
        update["cassandra"] = CassandraSettings(port=_port(), storage_port=_port(), heap="512m")
    else:
        update["kafka"] = KafkaSettings(port=_port(), controller_port=_port(), heap="512m")
    return infra.model_copy(update=update)


def _env_for(private: Settings, dependency: str) -> dict[str, str]:
    if dependency == "redis":
        return {"RECSYS_REDIS__PORT": str(private.redis.port)}
    if dependency == "cassandra":
        return {"RECSYS_CASSANDRA__PORT": str(private.cassandra.port)}
    return {
        "RECSYS_KAFKA__PORT": str(private.kafka.port),
        "RECSYS_KAFKA__BOOTSTRAP_SERVERS": private.kafka.bootstrap_servers,
    }


@asynccontextmanager
async def _server(private: Settings, dependency: str) -> AsyncIterator[None]:
    try:
        yield
    finally:
        manager.down(private, [dependency], progress=_quiet)


async def _metrics_show(port: int, *needles: str) -> str | None:
    try:
        text = await scrape(port)
    except Exception:
        return None
    return text if all(n in text for n in needles) else None


async def _logged(log_path: Path, dependency: str) -> bool | None:
    text = await asyncio.to_thread(lambda: log_path.read_text() if log_path.exists() else "")
    waiting = [line for line in text.splitlines() if "waiting_for_dependency" in line]
    return True if any(f"dependency={dependency}" in line for line in waiting) else None


def _outage_signs(dependency: str) -> tuple[str, ...]:
    """What the worker's metrics show while the dependency is down."""
    if dependency == "redis":
        return ('recsys_features_store_errors_total{store="redis"}', "recsys_features_paused 1.0")
    if dependency == "cassandra":
        return ('recsys_features_store_errors_total{store="cassandra"}',)
    return ()  # a broker outage shows as lag, and as retries in the log


@pytest.mark.parametrize("dependency", ["redis", "cassandra", "kafka"])
async def test_a_dependency_down_at_start_and_mid_stream_loses_nothing(
    dependency: str, feature_env: FeatureEnv, redis: Redis, tmp_path: Path
) -> None:
    fe = feature_env
    private = _private(fe.settings, tmp_path, dependency)
    events = workload(users=60, per_user=30)
    users = sorted({ev.user_id for ev in events})
    expected = last_event_ms(events)
    runs = {name: run_env(fe, tmp_path, name, fe.settings) for name in ("clean", "outage")}
    port = free_port()
    outage_env = {
        **runs["outage"],
        **_env_for(private, dependency),
        "RECSYS_METRICS__PORT": str(port),
        # A small backlog bound, so a store outage makes the worker pause its partitions.
        "RECSYS_FEATURES__MAX_PENDING_MEMBERS": "20",
        "RECSYS_FEATURES__STORE_MAX_BACKOFF_S": "1",
        "RECSYS_LOG__LEVEL": "INFO",
    }
    stream = f"test.{fe.unique}.outage.events"
    outage_env["RECSYS_FEATURES__EVENTS_TOPIC"] = stream
    await produce(fe.settings, fe.events_topic, events)  # the clean run's copy

    private_redis: Redis | None = None
    private_cassandra: CassandraClient | None = None
    async with _server(private, dependency):
        # Prepared while up, then stopped: the worker starts without it.
        await manager.up(private, [dependency], progress=_quiet)
        if dependency == "cassandra":
            make_keyspace(private, runs["outage"]["RECSYS_CASSANDRA__KEYSPACE"]).close()
        if dependency == "kafka":
            names = [stream, fe.late_topic, fe.sessions_topic, fe.dead_letter_topic]
            await create_topics(private, names, 3)
        else:
            await create_topics(fe.settings, [stream], 3)
        manager.down(private, [dependency], progress=_quiet)
        kafka_side = private if dependency == "kafka" else fe.settings
        go = asyncio.Event()
        log_path = tmp_path / "outage.log"
        with running_worker(outage_env, log_path) as proc:
            await asyncio.sleep(3)
            assert proc.poll() is None, "the worker gave up instead of waiting"
            await manager.up(private, [dependency], progress=_quiet)
            await wait_for(
                lambda: ready(port),
                what="the worker after the dependency came up",
                proc=proc,
                limit_s=90,
            )

            go.set()

            async def unless_down(_: int) -> None:
                await go.wait()  # cleared while the broker the events go to is down

            feeding = asyncio.create_task(
                trickle(kafka_side, stream, events, before_chunk=unless_down, chunk=20)
            )
            await asyncio.sleep(2)  # mid-stream
            if dependency == "kafka":
                go.clear()
            manager.down(private, [dependency], progress=_quiet)
            signs = _outage_signs(dependency)
            if signs:
                await wait_for(
                    lambda: _metrics_show(port, *signs), what="outage in the metrics", proc=proc
                )
            await asyncio.sleep(OUTAGE_S)
            assert proc.poll() is None, "the worker died in the outage"
            await manager.up(private, [dependency], progress=_quiet)
            go.set()
            await feeding

            private_redis = redis_client(private.redis) if dependency == "redis" else None
            if dependency == "cassandra":
                private_cassandra = connect_cassandra(private.cassandra)
            outage_redis = private_redis or redis
            await wait_until_done(
                fe,
                outage_redis,
                runs["outage"],
                expected,
                name="outage",
                proc=proc,
                cassandra=private_cassandra,
                limit_s=180,
            )
            with running_worker(runs["clean"], tmp_path / "clean.log") as clean:
                await wait_until_done(fe, redis, runs["clean"], expected, name="clean", proc=clean)
                prefixes = [runs[n]["RECSYS_REDIS__KEY_PREFIX"] for n in ("clean", "outage")]

                async def same_trending() -> bool | None:
                    clean_lists = (await trending_lists(redis, prefixes[:1]))[0]
                    outage_lists = (await trending_lists(outage_redis, prefixes[1:]))[0]
                    return True if clean_lists == outage_lists and clean_lists else None

                await wait_for(same_trending, what="equal trending lists", proc=proc)

        try:
            clean_redis = await redis_dump(redis, prefixes[0], users)
            assert await redis_dump(outage_redis, prefixes[1], users) == clean_redis
            keyspaces = [runs[n]["RECSYS_CASSANDRA__KEYSPACE"] for n in ("clean", "outage")]
            assert await cassandra_dump(
                private_cassandra or fe.client, keyspaces[1], users
            ) == await cassandra_dump(fe.client, keyspaces[0], users)
        finally:
            if private_redis is not None:
                await private_redis.aclose()
            if private_cassandra is not None:
                private_cassandra.close()
    log = log_path.read_text()
    if dependency == "kafka":
        assert "kafka_unavailable_retrying" in log or "KafkaConnectionError" in log, log[-3000:]
