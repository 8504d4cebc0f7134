"""``recsys features``: look at what the stream job stored.

recsys features show u123          # a table: feature, value, age, source
recsys features show u123 --json   # one JSON object, for scripts
recsys features trending US        # the country's most played titles of the last hour
recsys features trending US --window 24h --limit 50 --json
"""

from __future__ import annotations

import asyncio
import enum
import time
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

if TYPE_CHECKING:
    from recsys.config import Settings
    from recsys_features.reader import FeatureValue

# The settings, the store clients and the stores are imported inside the commands: `recsys` loads
# this module for every invocation, `--help` included, and redis-py and cassandra-driver alone
# take most of a second to import.

__all__ = ["features_app"]

features_app = typer.Typer(
    help="Real-time features of the stream job (docs/features.md).", no_args_is_help=True
)


@features_app.callback()
def _group() -> None:
    """Real-time features of the stream job (docs/features.md)."""


@features_app.command()
def show(
    user: Annotated[str, typer.Argument(help="The member's user_id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print a member's current real-time features and the age of each."""
    from recsys.config import Settings

    settings = Settings()
    try:
        values = asyncio.run(_read(settings, user))
    except Exception as exc:  # servers down or not migrated: one clear line, exit 1
        typer.echo(f"error: cannot read features of {user}: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(orjson.dumps({"user_id": user, "features": [v.to_json() for v in values]}))
        return
    typer.echo(_table(user, values))


class TrendingWindow(enum.StrEnum):
    HOUR = "1h"
    DAY = "24h"

    @property
    def feature(self) -> str:
        return f"trending_titles_{self.value}"


@features_app.command()
def trending(
    country: Annotated[str, typer.Argument(help="ISO 3166-1 alpha-2 country code, e.g. US.")],
    window: Annotated[
        TrendingWindow, typer.Option(help="Sliding window of event time.")
    ] = TrendingWindow.HOUR,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many titles.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print a country's most played titles (distinct members per title) over a window."""
    from recsys.config import Settings

    settings = Settings()
    code = country.strip().upper()
    if len(code) != 2 or not code.isalpha():
        typer.echo(f"error: {country!r} is not a two-letter country code", err=True)
        raise typer.Exit(2)
    try:
        top = asyncio.run(_trending(settings, code, window.feature, limit))
    except Exception as exc:  # Redis down: one clear line, exit 1
        typer.echo(f"error: cannot read trending titles of {code}: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        titles = [{"title_id": t, "members": n} for t, n in top]
        typer.echo(orjson.dumps({"country": code, "feature": window.feature, "titles": titles}))
        return
    if not top:
        typer.echo(f"no plays in {code} within {window.value} (is the features worker running?)")
        return
    width = max(len(t) for t, _ in top)
    lines = [f"{window.feature} of {code} (distinct members per title)"]
    lines += [f"  {rank:>3}. {t:<{width}}  {n}" for rank, (t, n) in enumerate(top, 1)]
    typer.echo("\n".join(lines))


async def _trending(
    settings: Settings, country: str, feature: str, limit: int
) -> list[tuple[str, int]]:
    from recsys.clients.redis import redis_client
    from recsys_features.trending_store import TrendingStore

    redis = redis_client(settings.redis)
    try:
        store = TrendingStore(
            redis, settings.redis.key_prefix, partitions=settings.features.partitions
        )
        return await store.read(country, feature, limit=limit)
    finally:
        await redis.aclose()


async def _read(settings: Settings, user: str) -> list[FeatureValue]:
    from recsys.clients.cassandra import connect_cassandra
    from recsys.clients.redis import redis_client
    from recsys_features.cassandra_store import CassandraFeatureStore
    from recsys_features.reader import read_user_features
    from recsys_features.redis_store import RedisFeatureStore

    redis = redis_client(settings.redis)
    cassandra = connect_cassandra(settings.cassandra)
    try:
        return await read_user_features(
            user,
            redis_store=RedisFeatureStore(redis, settings.redis.key_prefix),
            cassandra_store=CassandraFeatureStore(cassandra, settings.cassandra.keyspace),
            now_ms=time.time_ns() // 1_000_000,
        )
    finally:
        await redis.aclose()
        cassandra.close()


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _table(user: str, values: list[FeatureValue]) -> str:
    rows = [("feature", "value", "age", "source")] + [
        (v.name, orjson.dumps(v.value).decode(), _age(v.age_s), v.source) for v in values
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"real-time features of {user}"]
    for r in rows:
        lines.append(f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}")
    return "\n".join(lines)
