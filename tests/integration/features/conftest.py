"""Fixtures for the feature stream job: a keyspace with the migrations and a small catalog,
unique topics, a unique Redis prefix, and the worker's environment."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from recsys.clients.cassandra import CassandraClient, connect_cassandra
from recsys.config import Settings
from recsys.infra.cql_migrations import apply_migrations, drop_keyspace
from tests.features_support import create_topics, delete_topics, worker_env

# title_id -> (genres, runtime_min)
CATALOG: dict[str, tuple[list[str], int]] = {
    "tt_action": (["action", "thriller"], 60),
    "tt_drama": (["drama", "comedy"], 100),
    "tt_doc": (["documentary"], 90),
    "tt_comedy": (["comedy"], 30),
}


@dataclass
class FeatureEnv:
    settings: Settings
    unique: str
    keyspace: str
    key_prefix: str
    env: dict[str, str]
    log_path: Path
    client: CassandraClient

    @property
    def events_topic(self) -> str:
        return self.env["RECSYS_FEATURES__EVENTS_TOPIC"]

    @property
    def late_topic(self) -> str:
        return self.env["RECSYS_FEATURES__LATE_TOPIC"]

    @property
    def sessions_topic(self) -> str:
        return self.env["RECSYS_FEATURES__SESSIONS_TOPIC"]

    @property
    def dead_letter_topic(self) -> str:
        return self.env["RECSYS_FEATURES__DEAD_LETTER_TOPIC"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_keyspace(infra: Settings, name: str) -> CassandraClient:
    client = connect_cassandra(infra.cassandra)
    apply_migrations(client, infra.cassandra, keyspace=name)
    insert = client.session.prepare(
        f"INSERT INTO {name}.titles (title_id, genres, runtime_min) VALUES (?, ?, ?)"
    )
    for title_id, (genres, runtime_min) in CATALOG.items():
        client.session.execute(insert, (title_id, genres, runtime_min))
    return client


@pytest.fixture
async def feature_env(
    infra: Settings, unique: str, tmp_path: Path, redis: Redis
) -> AsyncIterator[FeatureEnv]:
    keyspace = f"test_feat_{unique}"
    client = make_keyspace(infra, keyspace)
    key_prefix = f"rec:v1:test:{unique}"
    env = worker_env(
        infra, unique=unique, keyspace=keyspace, key_prefix=key_prefix, data_dir=tmp_path / "data"
    )
    fe = FeatureEnv(infra, unique, keyspace, key_prefix, env, tmp_path / "worker.log", client)
    topics = [fe.events_topic, fe.late_topic, fe.sessions_topic, fe.dead_letter_topic]
    await create_topics(infra, topics, 3)
    yield fe
    async for key in redis.scan_iter(match=f"{key_prefix}:*"):
        await redis.delete(key)
    # The test's own keyspace and any per-run ones derived from it (`<keyspace>_<run>`).
    for row in client.session.execute("SELECT keyspace_name FROM system_schema.keyspaces"):
        name = row["keyspace_name"]
        if name == keyspace or name.startswith(f"{keyspace}_"):
            drop_keyspace(client, name)
    client.close()
    await delete_topics(infra, f"test.{unique}.")
    await delete_topics(infra, f"test-features-{unique}")
