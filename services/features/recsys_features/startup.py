"""Wait for the worker's dependencies at start, with backoff, instead of crashing.

A worker started before Cassandra, Redis or Kafka answer (``make up`` on a slow machine, a pod
scheduled before its StatefulSets) waits for each in turn, retrying with exponential backoff up to
``RECSYS_FEATURES__STARTUP_TIMEOUT_S``, and logs what it waits for. Its metrics endpoint is
already up meanwhile, with ``recsys_features_ready 0``.

    cassandra = wait_for_dependencies(settings)
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

from recsys.clients.cassandra import CassandraClient, connect_cassandra
from recsys.clients.kafka import kafka_admin
from recsys.clients.redis import redis_client
from recsys.clients.startup import retry_until
from recsys.config import Settings
from recsys.log import get_logger

__all__ = ["wait_for_dependencies"]

log = get_logger(__name__)

T = TypeVar("T")


def wait_for_dependencies(settings: Settings) -> CassandraClient:
    """Block until Cassandra, Redis and Kafka answer; returns the connected Cassandra client."""
    timeout_s = settings.features.startup_timeout_s
    cassandra = retry_until("cassandra", lambda: connect_cassandra(settings.cassandra), timeout_s)
    retry_until("redis", lambda: asyncio.run(_ping_redis(settings)), timeout_s)
    retry_until("kafka", lambda: asyncio.run(_topics_exist(settings)), timeout_s)
    return cassandra


async def _ping_redis(settings: Settings) -> None:
    client = redis_client(settings.redis, timeout_s=2.0)
    try:
        await client.ping()
    finally:
        await client.aclose()


class MissingTopics(RuntimeError):
    pass


async def _topics_exist(settings: Settings) -> None:
    """Kafka answers and holds every topic the worker reads or writes (the broker does not
    create topics on first use, and a write to a missing one would wait for it for ever)."""
    fs = settings.features
    admin = kafka_admin(settings.kafka)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    wanted = [fs.events_topic, fs.late_topic, fs.sessions_topic, fs.dead_letter_topic]
    missing = [t for t in wanted if t not in existing]
    if missing:
        raise MissingTopics(f"topics {missing} do not exist: run `recsys infra bootstrap`")
