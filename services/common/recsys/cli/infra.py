"""``recsys infra``: the local Kafka, Cassandra and Redis, and their schemas."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict
from typing import Annotated

import typer

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

Names = Annotated[
    list[str] | None,
    typer.Argument(help=f"Servers to act on (default: all of {', '.join(manager.SERVER_NAMES)})."),
]


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@app.command()
def up(names: Names = None) -> None:
    """Start the servers that are not running and wait until each answers."""
    settings = Settings()
    t0 = time.monotonic()
    try:
        results = asyncio.run(manager.up(settings, names, progress=typer.echo))
    except InfraError as exc:
        raise _fail(str(exc)) from None
    for r in results:
        note = f" ({r.note})" if r.note else ""
        typer.echo(
            f"  {r.name:<10} {r.action:<16} {r.seconds:6.1f}s  {r.address:<16} pid {r.pid}{note}"
        )
    typer.echo(
        f"infrastructure up in {time.monotonic() - t0:.1f}s; `recsys infra status` names the logs"
    )


@app.command()
def down(names: Names = None) -> None:
    """Stop the servers `up` started (by pid); nothing else is touched."""
    settings = Settings()
    try:
        outcome = manager.down(settings, names, progress=lambda _: None)
    except InfraError as exc:
        raise _fail(str(exc)) from None
    for name, result in outcome.items():
        typer.echo(f"  {name:<10} {result}")


@app.command()
def status(
    names: Names = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show what runs where, its pid, uptime and log directory. Exits 1 if any is not running."""
    settings = Settings()
    try:
        rows = asyncio.run(manager.status(settings, names))
    except InfraError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        for r in rows:
            pid = f"pid {r.pid}" if r.pid else ""
            uptime = f"up {r.uptime_s:.0f}s" if r.uptime_s is not None else ""
            typer.echo(
                f"  {r.name:<10} {r.state:<14} {r.address:<16} {pid:<10} {uptime:<10} logs {r.log}"
            )
    if any(r.state != "running" for r in rows):
        raise typer.Exit(code=1)


@app.command()
def topics() -> None:
    """Create the declared Kafka topics, or bring partitions and configs in line."""
    settings = Settings()
    try:
        changes = asyncio.run(_ensure_topics(settings))
    except Exception as exc:  # the command's boundary: report, do not dump a traceback
        raise _fail(
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
        raise _fail(str(exc)) from None
    except Exception as exc:  # driver errors (unreachable node, bad CQL): report, no traceback
        raise _fail(f"migrating Cassandra at {settings.cassandra.hosts} failed: {exc!r}") from None
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
