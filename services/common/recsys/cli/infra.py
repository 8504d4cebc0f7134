"""``recsys infra``: the local Kafka, Cassandra and Redis, and their schemas."""

from __future__ import annotations

import asyncio

import typer

from recsys.cli.processes import add_lifecycle_commands, fail
from recsys.clients.cassandra import connect_cassandra
from recsys.clients.kafka import kafka_admin
from recsys.config import Settings
from recsys.infra import manager
from recsys.infra.cql_migrations import MigrationResult, apply_migrations
from recsys.infra.kafka_topics import TopicChange, ensure_topics
from recsys.infra.server import InfraError
from recsys.topics import TOPICS

app = typer.Typer(
    help="Run the local infrastructure (Kafka, Cassandra, Redis) and bootstrap its schemas.",
    no_args_is_help=True,
)

add_lifecycle_commands(app, manager.SERVER_NAMES, "servers")


@app.command()
def topics() -> None:
    """Create the declared Kafka topics, or bring partitions and configs in line."""
    settings = Settings()
    try:
        changes = asyncio.run(_ensure_topics(settings))
    except Exception as exc:  # the command's boundary: report, do not dump a traceback
        raise fail(
            f"creating topics on {settings.kafka.bootstrap_servers} failed: {exc!r}"
        ) from None
    for c in changes:
        typer.echo(f"  topic {c.topic:<36} {c.action}")


async def _ensure_topics(settings: Settings) -> list[TopicChange]:
    admin = kafka_admin(settings.kafka)
    await admin.start()
    try:
        return await ensure_topics(
            admin, TOPICS, replication_factor=settings.kafka.replication_factor
        )
    finally:
        await admin.close()


@app.command()
def migrate() -> None:
    """Create the Cassandra keyspace and apply pending CQL migrations in order."""
    settings = Settings()
    try:
        results = _migrate(settings)
    except InfraError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # driver errors (unreachable node, bad CQL): report, no traceback
        raise fail(f"migrating Cassandra at {settings.cassandra.hosts} failed: {exc!r}") from None
    for m in results:
        typer.echo(f"  migration {m.version:04d}_{m.name:<30} {m.action}")


def _migrate(settings: Settings) -> list[MigrationResult]:
    client = connect_cassandra(settings.cassandra)
    try:
        return apply_migrations(client, settings.cassandra)
    finally:
        client.close()


@app.command()
def bootstrap() -> None:
    """Topics and migrations: everything a fresh cluster needs before services start."""
    topics()
    migrate()
