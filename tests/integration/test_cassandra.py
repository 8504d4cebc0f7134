"""Prepared-statement writes and reads with TTL on the real Cassandra."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from recsys.clients.cassandra import CassandraClient
from recsys.config import Settings
from recsys.infra.cql_migrations import drop_keyspace, ensure_keyspace


@pytest.fixture
def keyspace(cassandra: CassandraClient, infra: Settings, unique: str) -> Iterator[str]:
    name = f"test_{unique}"
    ensure_keyspace(cassandra, infra.cassandra, name)
    cassandra.session.execute(f"CREATE TABLE {name}.kv (k text PRIMARY KEY, v text, n int)")
    yield name
    drop_keyspace(cassandra, name)


async def test_prepared_write_and_read_with_ttl(cassandra: CassandraClient, keyspace: str) -> None:
    insert = f"INSERT INTO {keyspace}.kv (k, v, n) VALUES (?, ?, ?) USING TTL ?"
    select = f"SELECT v, n, TTL(v) AS ttl FROM {keyspace}.kv WHERE k = ?"
    await cassandra.execute(insert, ("short", "gone soon", 1, 2))
    await cassandra.execute(insert, ("long", "stays", 2, 3600))

    # Prepared once per CQL text, then reused.
    assert cassandra.prepare(insert) is cassandra.prepare(insert)

    (row,) = await cassandra.execute(select, ("long",))
    assert (row["v"], row["n"]) == ("stays", 2)
    assert 3590 <= row["ttl"] <= 3600
    (row,) = await cassandra.execute(select, ("short",))
    assert row["v"] == "gone soon"
    assert 0 < row["ttl"] <= 2

    deadline = time.monotonic() + 10
    while await cassandra.execute(select, ("short",)):
        assert time.monotonic() < deadline, "a row with TTL 2 s outlived 10 s"
        await asyncio.sleep(0.5)
    assert await cassandra.execute(select, ("long",))


def test_sessions_route_token_aware(cassandra: CassandraClient) -> None:
    policy = cassandra.cluster.profile_manager.default.load_balancing_policy
    assert type(policy).__name__ == "TokenAwarePolicy"
    assert cassandra.execute_sync("SELECT release_version FROM system.local")[0][
        "release_version"
    ].startswith("5.0")
