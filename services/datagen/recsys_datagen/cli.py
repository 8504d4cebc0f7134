"""``recsys world``, ``recsys simulate`` and ``recsys import``: the data commands.

Plugged into the ``recsys`` command line through the ``recsys.cli`` entry points in
pyproject.toml. Each command builds its settings and clients itself and passes them down; errors
that are the user's to fix (no world yet, Cassandra not migrated, a file in the wrong format,
ingest not running) end the command with one clear line and exit code 1, not a traceback.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

    from recsys.clients.cassandra import CassandraClient
    from recsys.config import Settings
    from recsys_datagen.importers import ImportProfile, ImportReport, SourceData
    from recsys_datagen.sim_world import SimWorld
    from recsys_datagen.simulator import SimulationConfig, SimulationReport
    from recsys_datagen.traffic import TrafficModel

# Everything a command needs beyond typer is imported inside it: `recsys` loads this module for
# every invocation, `--help` and the light commands of other groups included, and numpy, pyarrow,
# pyiceberg and cassandra-driver together took seconds to import.

__all__ = ["import_app", "simulate", "world_app"]

world_app = typer.Typer(
    help="The synthetic world: a catalog of titles and a base of members.", no_args_is_help=True
)
import_app = typer.Typer(
    help="Import real interaction data (MovieLens, MovieTweetings) through the ingest API.",
    no_args_is_help=True,
)


# recsys_datagen.world.DEFAULT_AS_OF as a datetime (a unit test pins the two together): importing
# the world module for it would load numpy and pyarrow.
_AS_OF = datetime(2026, 1, 1)


class _Fail(Exception):
    """An error the user can fix; the message says how."""


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the errors a user can fix into one red line and exit code 1."""
    from cassandra import DriverException, RequestExecutionException
    from cassandra.cluster import NoHostAvailable

    from recsys_datagen import catalog_store
    from recsys_datagen.importers import ImportFormatError

    try:
        yield
    except (_Fail, ImportFormatError, catalog_store.CatalogTablesMissing) as exc:
        raise _fail(str(exc)) from None
    except (DriverException, RequestExecutionException, NoHostAvailable) as exc:
        raise _fail(f"Cassandra: {exc}") from None


@contextmanager
def _cassandra(settings: Settings, enabled: bool = True) -> Iterator[CassandraClient | None]:
    if not enabled:
        yield None
        return
    from recsys.clients.cassandra import connect_cassandra

    try:
        client = connect_cassandra(settings.cassandra)
    except Exception as exc:  # NoHostAvailable and friends: say where we looked
        raise _Fail(
            f"cannot reach Cassandra at {settings.cassandra.hosts}:{settings.cassandra.port} "
            f"({type(exc).__name__}); start it with `recsys infra up`"
        ) from None
    try:
        yield client
    finally:
        client.close()


# --- recsys world -------------------------------------------------------------------------


@world_app.command()
def generate(
    seed: Annotated[int, typer.Option(min=0, help="Seed of every random choice.")] = 42,
    titles: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Titles in the catalog.")
    ] = 15_000,
    members: Annotated[int, typer.Option(min=1, max=10_000_000, help="Members.")] = 100_000,
    as_of: Annotated[
        datetime,
        typer.Option(formats=["%Y-%m-%d"], help="The world's 'today': latest release date."),
    ] = _AS_OF,
    cassandra: Annotated[
        bool,
        typer.Option("--cassandra/--no-cassandra", help="Write the titles and members tables."),
    ] = True,
    lake: Annotated[
        bool, typer.Option("--lake/--no-lake", help="Write dim_titles and dim_members in the lake.")
    ] = True,
    concurrency: Annotated[
        int, typer.Option(min=1, max=512, help="Cassandra write batches in flight.")
    ] = 32,
) -> None:
    """Generate the synthetic world for a seed and store it (replacing the previous one).

    The same seed, sizes and --as-of always give the same world.
    """
    from recsys.config import Settings
    from recsys.lake import load_catalog
    from recsys_datagen.dimensions import SYNTHETIC
    from recsys_datagen.progress import rich_progress
    from recsys_datagen.store import CassandraTarget, LakeTarget, store_dimensions
    from recsys_datagen.world import WorldSpec, generate_world

    settings = Settings()
    t0 = time.perf_counter()
    with _user_errors(), rich_progress() as progress:
        advance = progress.task("generating world", titles + members)
        world = generate_world(WorldSpec(seed, titles, members, as_of.date()))
        advance(titles + members)
        generated = time.perf_counter() - t0
        with _cassandra(settings, cassandra) as client:
            report = store_dimensions(
                world.titles,
                world.members,
                source=SYNTHETIC,
                cassandra=CassandraTarget(client, settings.cassandra.keyspace, concurrency)
                if client
                else None,
                lake=LakeTarget(load_catalog(settings.lake), settings.lake) if lake else None,
                seed=seed,
                details={"titles": titles, "members": members, "as_of": as_of.date().isoformat()},
                progress=progress,
            )
    typer.echo(
        f"world seed {seed}: {titles} titles, {members} members, generated in {generated:.1f} s"
    )
    if "cassandra" in report.seconds:
        typer.echo(
            f"  cassandra  {settings.cassandra.keyspace}.titles, .members: {titles + members} "
            f"rows in {report.seconds['cassandra']:.1f} s "
            f"({report.cassandra_deleted} stale rows removed)"
        )
    if "lake" in report.seconds:
        typer.echo(
            f"  lake       {settings.lake.namespace}.dim_titles, .dim_members in "
            f"{settings.lake.warehouse}: replaced in {report.seconds['lake']:.1f} s"
        )
    typer.echo(f"done in {time.perf_counter() - t0:.1f} s")


@world_app.command()
def status() -> None:
    """What the catalog holds, per source, in Cassandra and in the lake."""
    from recsys.config import Settings
    from recsys.lake import load_catalog
    from recsys_datagen import catalog_store, lake_tables
    from recsys_datagen.dimensions import SOURCES

    settings = Settings()
    with _user_errors():
        with _cassandra(settings) as client:
            assert client is not None
            catalog_store.ensure_catalog_tables(client, settings.cassandra.keyspace)
            for source in SOURCES:
                record = catalog_store.read_dataset(client, settings.cassandra.keyspace, source)
                if record is None:
                    typer.echo(f"  cassandra  {source:<15} nothing written")
                    continue
                seed = f", seed {record.seed}" if record.seed is not None else ""
                typer.echo(
                    f"  cassandra  {source:<15} {record.titles} titles, {record.members} members"
                    f"{seed}, written {record.written_at:%Y-%m-%d %H:%M:%S} UTC"
                )
        catalog = load_catalog(settings.lake)
        for name in (lake_tables.DIM_TITLES, lake_tables.DIM_MEMBERS):
            rows = lake_tables.read_dim(catalog, settings.lake, name)
            if rows is None:
                typer.echo(f"  lake       {name:<15} no table")
                continue
            counts = rows.group_by("source").aggregate([("source", "count")]).to_pylist()
            text = ", ".join(f"{c['source']} {c['source_count']}" for c in counts) or "empty"
            typer.echo(f"  lake       {name:<15} {text}")


# --- recsys simulate ----------------------------------------------------------------------


class WorldSource(StrEnum):
    lake = "lake"
    cassandra = "cassandra"


def simulate(
    rate: Annotated[float, typer.Option(min=0.1, max=100_000, help="Events per second.")] = 100.0,
    duration: Annotated[float, typer.Option(min=0.1, help="Seconds to run.")] = 60.0,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Seed of the behaviour (default: a fresh one, printed). The same "
            "seed repeats the same event_ids, which the stream job drops as duplicates.",
        ),
    ] = None,
    duplicates: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Share of resent events (same event_id).")
    ] = 0.01,
    late: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Share of events sent minutes late.")
    ] = 0.02,
    malformed: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Share of invalid events.")
    ] = 0.005,
    ingest_url: Annotated[
        str | None, typer.Option(help="Ingest base URL (default: RECSYS_INGEST__HOST/PORT).")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="X-API-Key (default: the first of RECSYS_INGEST__API_KEYS).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Batches in flight.")] = 8,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, max=10_000, help="Most events per POST (default: the ingest's limit)."),
    ] = None,
    flush_ms: Annotated[
        int, typer.Option(min=10, max=10_000, help="How often batches are sent, like an SDK.")
    ] = 100,
    time_scale: Annotated[
        float,
        typer.Option(
            min=0.01,
            max=10_000,
            help="Member time per wall-clock second: at 60 a "
            "100-minute film completes 100 s after its play (watched_sec stays 6000).",
        ),
    ] = 60.0,
    world_from: Annotated[
        WorldSource,
        typer.Option(help="Where to read the world generated by `recsys world generate`."),
    ] = WorldSource.lake,
    warm_start: Annotated[
        bool, typer.Option("--warm-start/--no-warm-start", help="Begin with sessions in progress.")
    ] = True,
    report_every: Annotated[
        float, typer.Option(min=0.5, help="Seconds between progress lines.")
    ] = 5.0,
) -> None:
    """Simulate members' traffic and post it to the ingest API at a steady rate."""
    import numpy as np

    from recsys.config import Settings
    from recsys_datagen.reporting import simulation_lines
    from recsys_datagen.simulator import SimulationConfig
    from recsys_datagen.traffic import TrafficModel, TrafficShares

    settings = Settings()
    with _user_errors():
        try:
            shares = TrafficShares(duplicate=duplicates, late=late, malformed=malformed)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        url = ingest_url or settings.ingest.url
        key = api_key or _default_api_key(settings)
        world = _load_world(settings, world_from)
        _probe_ingest(url)
        seed = seed if seed is not None else secrets.randbits(32)
        model = TrafficModel(
            world, np.random.Generator(np.random.PCG64(seed)), shares=shares, time_scale=time_scale
        )
        typer.echo(
            f"simulating {world.member_count} members and {world.title_count} titles: "
            f"{rate:g} events/s for {duration:g} s to {url} "
            f"(seed {seed}, time scale {time_scale:g}x)"
        )
        warm = 0
        if warm_start:
            t0 = time.perf_counter()
            warm = model.warm_start(time.time_ns() // 1_000_000, rate)
            typer.echo(
                f"  warm start: {warm} sessions in progress, {model.in_flight} events planned "
                f"({time.perf_counter() - t0:.1f} s)"
            )
        config = SimulationConfig(
            rate=rate,
            duration_s=duration,
            tick_s=flush_ms / 1000,
            batch_size=batch_size or settings.ingest.max_batch_events,
            report_every_s=report_every,
        )
        report = asyncio.run(_simulate(model, url, key, concurrency, config))
        report.warm_sessions = warm
    for line in simulation_lines(report):
        typer.echo(line)
    if report.stats.failed:
        raise _fail(f"{report.stats.failed} events got no answer from the ingest")


async def _simulate(
    model: TrafficModel, url: str, api_key: str, concurrency: int, config: SimulationConfig
) -> SimulationReport:
    from recsys.clients.ingest import IngestClient
    from recsys_datagen.reporting import progress_line
    from recsys_datagen.sender import BatchSender
    from recsys_datagen.simulator import run_simulation

    async with IngestClient(url, api_key=api_key, max_connections=concurrency) as client:
        sender = BatchSender(client, concurrency=concurrency)
        return await run_simulation(
            model, sender, config, on_progress=lambda snap: typer.echo(progress_line(snap))
        )


def _load_world(settings: Settings, source: WorldSource) -> SimWorld:
    from recsys.lake import load_catalog
    from recsys_datagen import catalog_store, lake_tables
    from recsys_datagen.dimensions import SYNTHETIC
    from recsys_datagen.sim_world import SimWorld

    hint = "run `recsys world generate` first"
    titles: pa.Table | None
    members: pa.Table | None
    if source is WorldSource.lake:
        catalog = load_catalog(settings.lake)
        titles = lake_tables.read_dim(catalog, settings.lake, lake_tables.DIM_TITLES, SYNTHETIC)
        members = lake_tables.read_dim(catalog, settings.lake, lake_tables.DIM_MEMBERS, SYNTHETIC)
        where = f"the lake at {settings.lake.warehouse}"
    else:
        with _cassandra(settings) as client:
            assert client is not None
            ks = settings.cassandra.keyspace
            catalog_store.ensure_catalog_tables(client, ks)
            if catalog_store.read_dataset(client, ks, SYNTHETIC) is None:
                raise _Fail(f"no synthetic world in Cassandra keyspace {ks!r}: {hint}")
            titles = catalog_store.read_titles(client, ks, SYNTHETIC)
            members = catalog_store.read_members(client, ks, SYNTHETIC)
        where = f"Cassandra keyspace {settings.cassandra.keyspace!r}"
    if titles is None or members is None or titles.num_rows == 0 or members.num_rows == 0:
        raise _Fail(f"no synthetic world in {where}: {hint}")
    return SimWorld.from_tables(titles, members)


def _default_api_key(settings: Settings) -> str:
    keys = [k.strip() for k in settings.ingest.api_keys.split(",") if k.strip()]
    if not keys:
        raise _Fail("no API key: pass --api-key or set RECSYS_INGEST__API_KEYS")
    return keys[0]


def _probe_ingest(url: str) -> None:
    """Fail fast, with the address, when nothing listens there (any HTTP answer will do)."""
    import httpx

    try:
        httpx.get(f"{url.rstrip('/')}/readyz", timeout=3.0)
    except httpx.TransportError as exc:
        raise _Fail(
            f"cannot reach the ingest API at {url} ({type(exc).__name__}): start it "
            "(`recsys-ingest`) or pass --ingest-url"
        ) from None


# --- recsys import ------------------------------------------------------------------------


Reader = Callable[[Path], "SourceData"]

# Options shared by every `recsys import` command, declared once.
ImportIngestUrl = Annotated[str | None, typer.Option(help="Ingest base URL.")]
ImportApiKey = Annotated[str | None, typer.Option(help="X-API-Key.")]
ImportBatchSize = Annotated[int | None, typer.Option(min=1, max=10_000, help="Events per POST.")]
ImportConcurrency = Annotated[
    int,
    typer.Option(min=1, max=64, help="Batches in flight; above 1 batches may arrive out of order."),
]
ImportLimit = Annotated[int | None, typer.Option(min=1, help="Import only the N earliest ratings.")]
ImportCountry = Annotated[str, typer.Option(help="Country of the imported members.")]
ImportCatalog = Annotated[
    bool, typer.Option("--catalog/--no-catalog", help="Store titles and members.")
]
ImportSend = Annotated[
    bool, typer.Option("--send/--no-send", help="Send the events to the ingest.")
]
ImportDryRun = Annotated[
    bool, typer.Option(help="Parse and count only: same as --no-catalog --no-send.")
]


@import_app.command()
def movielens(
    path: Annotated[
        Path,
        typer.Argument(
            help="Directory with u.data + u.item, ratings.dat + "
            "movies.dat or ratings.csv + movies.csv."
        ),
    ],
    ingest_url: ImportIngestUrl = None,
    api_key: ImportApiKey = None,
    batch_size: ImportBatchSize = None,
    concurrency: ImportConcurrency = 1,
    limit: ImportLimit = None,
    country: ImportCountry = "US",
    catalog: ImportCatalog = True,
    send: ImportSend = True,
    dry_run: ImportDryRun = False,
) -> None:
    """Import a MovieLens dataset (ml-100k, ml-1m, ml-latest/ml-25m), format detected."""
    from recsys_datagen.importers import read_movielens

    _import(
        read_movielens,
        path,
        ingest_url,
        api_key,
        batch_size,
        concurrency,
        limit,
        country,
        catalog and not dry_run,
        send and not dry_run,
    )


@import_app.command()
def movietweetings(
    path: Annotated[
        Path, typer.Argument(help="Directory with ratings.dat, movies.dat (users.dat).")
    ],
    ingest_url: ImportIngestUrl = None,
    api_key: ImportApiKey = None,
    batch_size: ImportBatchSize = None,
    concurrency: ImportConcurrency = 1,
    limit: ImportLimit = None,
    country: ImportCountry = "US",
    catalog: ImportCatalog = True,
    send: ImportSend = True,
    dry_run: ImportDryRun = False,
) -> None:
    """Import the MovieTweetings dataset (ratings 0-10 from IMDb tweets)."""
    from recsys_datagen.importers import read_movietweetings

    _import(
        read_movietweetings,
        path,
        ingest_url,
        api_key,
        batch_size,
        concurrency,
        limit,
        country,
        catalog and not dry_run,
        send and not dry_run,
    )


def _import(
    reader: Reader,
    path: Path,
    ingest_url: str | None,
    api_key: str | None,
    batch_size: int | None,
    concurrency: int,
    limit: int | None,
    country: str,
    store: bool,
    send: bool,
) -> None:
    from recsys.catalog import ISO_COUNTRIES
    from recsys.config import Settings
    from recsys_datagen.importers import ImportProfile
    from recsys_datagen.importers.mapping import limit_ratings
    from recsys_datagen.progress import rich_progress
    from recsys_datagen.reporting import import_lines, parse_lines

    settings = Settings()
    country = country.upper()
    if country not in ISO_COUNTRIES:
        raise typer.BadParameter(
            f"{country!r} is not an ISO 3166-1 alpha-2 code", param_hint="--country"
        )
    t0 = time.perf_counter()
    with _user_errors():
        with rich_progress() as progress:
            progress.task(f"reading {path.name}", None)
            data = reader(path)
        for line in parse_lines(data):
            typer.echo(line)
        if data.ratings == 0:
            raise _Fail(f"no usable ratings in {data.ratings_file}")
        if limit is not None and limit < data.ratings:
            data = limit_ratings(data, limit)
            typer.echo(f"  limit      the {data.ratings} earliest ratings")
        url = ingest_url or settings.ingest.url
        if send:
            _probe_ingest(url)
        with _cassandra(settings, store) as client:
            report = asyncio.run(
                _run_import(
                    data,
                    settings,
                    client,
                    store=store,
                    send=send,
                    url=url,
                    api_key=api_key or _default_api_key(settings),
                    batch_size=batch_size or settings.ingest.max_batch_events,
                    concurrency=concurrency,
                    profile=ImportProfile(country=country),
                )
            )
    for line in import_lines(report):
        typer.echo(line)
    typer.echo(f"done in {time.perf_counter() - t0:.1f} s")
    if report.send is not None and report.send.failed:
        raise _fail(f"{report.send.failed} events got no answer from the ingest")


async def _run_import(
    data: SourceData,
    settings: Settings,
    client: CassandraClient | None,
    *,
    store: bool,
    send: bool,
    url: str,
    api_key: str,
    batch_size: int,
    concurrency: int,
    profile: ImportProfile,
) -> ImportReport:
    from recsys.clients.ingest import IngestClient
    from recsys.lake import load_catalog
    from recsys_datagen.importers import run_import
    from recsys_datagen.progress import rich_progress
    from recsys_datagen.sender import BatchSender
    from recsys_datagen.store import CassandraTarget, LakeTarget

    cassandra = CassandraTarget(client, settings.cassandra.keyspace) if client else None
    lake = LakeTarget(load_catalog(settings.lake), settings.lake) if store else None
    with rich_progress() as progress:
        if not send:
            return await run_import(
                data,
                profile=profile,
                sender=None,
                cassandra=cassandra,
                lake=lake,
                batch_size=batch_size,
                progress=progress,
            )
        async with IngestClient(url, api_key=api_key, max_connections=concurrency) as ingest:
            return await run_import(
                data,
                profile=profile,
                sender=BatchSender(ingest, concurrency=concurrency),
                cassandra=cassandra,
                lake=lake,
                batch_size=batch_size,
                progress=progress,
            )
