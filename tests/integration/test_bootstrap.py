"""Topic and migration bootstrap against the real servers: declared state, applied idempotently."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from recsys.clients.cassandra import CassandraClient
from recsys.clients.kafka import kafka_admin
from recsys.config import Settings
from recsys.infra.cql_migrations import MIGRATIONS_DIR, apply_migrations, drop_keyspace
from recsys.infra.kafka_topics import ensure_topics
from recsys.infra.server import InfraError
from recsys.topics import TOPICS, TopicSpec


@pytest.fixture
async def admin(infra: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = kafka_admin(infra.kafka)
    await client.start()
    yield client
    await client.close()


async def test_declared_topics_bootstrap_twice_without_change(
    admin: AIOKafkaAdminClient,
) -> None:
    await ensure_topics(admin, TOPICS, replication_factor=1)
    again = await ensure_topics(admin, TOPICS, replication_factor=1)
    assert {c.topic: c.action for c in again} == {t.name: "unchanged" for t in TOPICS}
    described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
    for spec in TOPICS:
        assert described[spec.name] == spec.partitions


async def test_topic_drift_is_repaired(admin: AIOKafkaAdminClient, unique: str) -> None:
    spec = TopicSpec(
        name=f"test.drift.{unique}",
        partitions=2,
        retention=timedelta(hours=1),
        cleanup_policy="delete",
        description="test",
        key="k",
        value="v",
    )
    assert [c.action for c in await ensure_topics(admin, [spec], replication_factor=1)] == [
        "created"
    ]
    # Someone changes retention by hand; the declaration grows to 4 partitions.
    await admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, spec.name, configs={"retention.ms": "1000"})]
    )
    grown = replace(spec, partitions=4)
    (change,) = await ensure_topics(admin, [grown], replication_factor=1)
    assert "partitions 2 -> 4" in change.action
    assert "retention.ms=3600000" in change.action
    (change,) = await ensure_topics(admin, [grown], replication_factor=1)
    assert change.action == "unchanged"
    with pytest.raises(InfraError, match="cannot be removed"):
        await ensure_topics(admin, [spec], replication_factor=1)


@pytest.fixture
def keyspace(cassandra: CassandraClient, unique: str) -> Iterator[str]:
    name = f"test_mig_{unique}"
    yield name
    drop_keyspace(cassandra, name)


def test_migrations_apply_once_in_order(
    cassandra: CassandraClient, infra: Settings, keyspace: str
) -> None:
    first = apply_migrations(cassandra, infra.cassandra, keyspace=keyspace)
    assert first
    assert all(r.action == "applied" for r in first)
    second = apply_migrations(cassandra, infra.cassandra, keyspace=keyspace)
    assert [(r.version, r.action) for r in second] == [
        (r.version, "already applied") for r in first
    ]
    tables = {
        row["table_name"]
        for row in cassandra.session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
        )
    }
    assert {"schema_migrations", "online_features"} <= tables


def test_new_and_edited_migrations(
    cassandra: CassandraClient, infra: Settings, keyspace: str, tmp_path: Path
) -> None:
    for src in MIGRATIONS_DIR.glob("*.cql"):
        (tmp_path / src.name).write_text(src.read_text())
    apply_migrations(cassandra, infra.cassandra, keyspace=keyspace, directory=tmp_path)

    (tmp_path / "0999_extra.cql").write_text(
        "CREATE TABLE IF NOT EXISTS extra (k int PRIMARY KEY);"
    )
    results = apply_migrations(cassandra, infra.cassandra, keyspace=keyspace, directory=tmp_path)
    assert results[-1].action == "applied"
    assert results[-1].version == 999
    assert all(r.action == "already applied" for r in results[:-1])

    (tmp_path / "0999_extra.cql").write_text(
        "CREATE TABLE IF NOT EXISTS extra2 (k int PRIMARY KEY);"
    )
    with pytest.raises(InfraError, match="edited after it was applied"):
        apply_migrations(cassandra, infra.cassandra, keyspace=keyspace, directory=tmp_path)
