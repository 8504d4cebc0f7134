"""Fixtures for the pipelines against the real Cassandra: a keyspace of the test's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from recsys.clients.cassandra import CassandraClient, connect_cassandra
from recsys.config import CassandraSettings, Settings
from recsys.infra.cql_migrations import apply_migrations, drop_keyspace


@pytest.fixture
def keyspace_settings(infra: Settings, unique: str) -> Iterator[CassandraSettings]:
    """Cassandra settings whose keyspace is new, migrated, and dropped after the test."""
    keyspace = f"test_pipe_{unique}"
    client = connect_cassandra(infra.cassandra)
    apply_migrations(client, infra.cassandra, keyspace=keyspace)
    yield infra.cassandra.model_copy(update={"keyspace": keyspace})
    drop_keyspace(client, keyspace)
    client.close()


@pytest.fixture
def cassandra_client(keyspace_settings: CassandraSettings) -> Iterator[CassandraClient]:
    client = connect_cassandra(keyspace_settings)
    yield client
    client.close()
