"""``recsys infra``: the local Kafka, Cassandra and Redis, and their schemas.

The Kafka and Cassandra clients are imported inside the commands that use them: at module level
they would slow every `recsys` invocation, `--help` included (docs/infrastructure.md).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import typer

from recsys.cli.processes import add_lifecycle_commands, fail
from recsys.infra.names import SERVER_NAMES
from recsys.infra.server import InfraError

if TYPE_CHECKING:
    from recsys.config import Settings
    from recsys.infra.cql_migrations import MigrationResult
    from recsys.infra.kafka_topics import TopicChange

app = typer.Typer(
    help="Run the local infrastructure (Kafka, Cassandra, Redis) and bootstrap its schemas.",
    no_args_is_help=True,
)

add_lifecycle_commands(app, SERVER_NAMES, "servers")


@app.command()
def topics() -> None:
    """Create the declared Kafka topics, or bring partitions and configs in line."""
    from recsys.config import Settings

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
    from recsys.clients.kafka import kafka_admin
    from recsys.infra.kafka_topics import ensure_topics
    from recsys.topics import TOPICS

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
    from recsys.config import Settings

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
    from recsys.clients.cassandra import connect_cassandra
    from recsys.infra.cql_migrations import apply_migrations

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
