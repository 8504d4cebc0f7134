"""``recsys pipeline ...`` and ``recsys analytics ...``.

Only typer is imported at module level (every ``recsys`` call loads every command group); the
pipelines, DuckDB, pyiceberg and the Cassandra driver are imported inside the commands.

    recsys pipeline run silver [--full]
    recsys pipeline run daily [--date D]          # silver, gold, features for day D
    recsys pipeline backfill FROM TO
    recsys pipeline training-set FROM TO
    recsys pipeline bootstrap [--as-of D]        # events -> models and fallback lists
    recsys pipeline fallbacks [--as-of D]
    recsys analytics top-titles [--country US] [--as-of D]
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from recsys.config import Settings
    from recsys_pipelines.bootstrap import BootstrapReport
    from recsys_pipelines.daily import DailyContext
    from recsys_pipelines.settings import PipelineSettings

pipeline_app = typer.Typer(
    help="Batch pipelines over the lake: silver, gold, daily features, training sets.",
    no_args_is_help=True,
)
run_app = typer.Typer(help="Run one stage (or the daily chain) once.", no_args_is_help=True)
pipeline_app.add_typer(run_app, name="run")
analytics_app = typer.Typer(
    help="The analytics questions of seed 001, computed from silver for an as-of date.",
    no_args_is_help=True,
)

DateOption = Annotated[
    datetime | None,
    typer.Option("--date", formats=["%Y-%m-%d"], help="The day (UTC); default: yesterday."),
]
AsOfOption = Annotated[
    datetime | None,
    typer.Option(formats=["%Y-%m-%d"], help="Last day of the data used (UTC); default: yesterday."),
]
CountryOption = Annotated[str | None, typer.Option(help="Only this country (ISO 3166-1 alpha-2).")]


@dataclass
class _Context:
    settings: Settings
    pipelines: PipelineSettings
    catalog: Catalog


def _say(message: str) -> None:
    typer.echo(message, err=True)


@contextmanager
def _context() -> Iterator[_Context]:
    """Settings and the lake's catalog; the errors an operator can fix become one red line."""
    from recsys.config import Settings
    from recsys.lake import load_catalog
    from recsys_pipelines.errors import PipelineError
    from recsys_pipelines.settings import load_pipeline_settings

    try:
        settings = Settings()
        yield _Context(settings, load_pipeline_settings(), load_catalog(settings.lake))
    except PipelineError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None


def _day(value: datetime | None) -> date:
    from recsys_pipelines.dates import today_utc

    return value.date() if value is not None else today_utc() - timedelta(days=1)


# --- pipeline run ... -------------------------------------------------------------------------


@run_app.command("silver")
def run_silver_command(
    full: Annotated[bool, typer.Option(help="Recompute every day, not only new bronze.")] = False,
) -> None:
    """Bronze -> silver: the days of bronze snapshots not processed yet."""
    from recsys_pipelines.silver import run_silver

    with _context() as ctx:
        report = run_silver(ctx.catalog, ctx.settings.lake, ctx.pipelines, full=full, progress=_say)
    for t in report.tables:
        state = f"{t.rows} rows over {len(t.days)} day(s)" if t.committed else "up to date"
        typer.echo(f"{t.table:20s} {state}")
    typer.echo(f"silver done in {report.seconds:.1f} s")


@run_app.command("gold")
def run_gold_command(day: DateOption = None) -> None:
    """Silver -> gold: every analytics question for one as-of day, stored in the gold tables."""
    from recsys_pipelines.dates import check_not_future
    from recsys_pipelines.gold import materialize_gold

    with _context() as ctx:
        as_of = check_not_future(_day(day), "date")
        written = materialize_gold(ctx.catalog, ctx.settings.lake, ctx.pipelines, as_of)
    for name, rows in written.items():
        typer.echo(f"{name:28s} {rows} rows for {as_of}")


@contextmanager
def _daily_context(ctx: _Context, cassandra: bool) -> Iterator[DailyContext]:
    """The daily chain's context, with a Cassandra session when features go there too."""
    from recsys_pipelines.daily import DailyContext

    client = None
    if cassandra:
        from cassandra import DriverException
        from cassandra.cluster import NoHostAvailable

        from recsys.clients.cassandra import connect_cassandra

        try:
            client = connect_cassandra(ctx.settings.cassandra)
        except (DriverException, NoHostAvailable) as exc:
            typer.secho(f"error: Cassandra: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=1) from None
    try:
        from recsys.models import ModelRegistry

        registry = ModelRegistry.from_settings(ctx.settings.models) if client is not None else None
        yield DailyContext(ctx.settings, ctx.pipelines, ctx.catalog, client, registry)
    finally:
        if client is not None:
            client.close()


@contextmanager
def _cassandra_errors() -> Iterator[None]:
    """A failed feature write ends the run with one line; the lake stages before it are kept
    and the run can simply be repeated (every write is idempotent)."""
    from cassandra import DriverException, OperationTimedOut, RequestExecutionException
    from cassandra.cluster import NoHostAvailable

    try:
        yield
    except (DriverException, RequestExecutionException, NoHostAvailable, OperationTimedOut) as exc:
        typer.secho(f"error: Cassandra: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None


CassandraOption = Annotated[
    bool,
    typer.Option("--cassandra/--no-cassandra", help="Also write the features to Cassandra."),
]


@run_app.command("daily")
def run_daily_command(day: DateOption = None, cassandra: CassandraOption = True) -> None:
    """Silver, gold and the daily batch features for one day (lake snapshot + Cassandra)."""
    from recsys_pipelines.daily import run_daily

    with _context() as ctx, _daily_context(ctx, cassandra) as daily, _cassandra_errors():
        report = run_daily(daily, _day(day), progress=_say)
    stages = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in report.seconds.items())
    typer.echo(
        f"{report.day}: {report.counts['users']} members, {report.counts['titles']} titles, "
        f"{report.counts['sessions']} sessions ({stages})"
    )


@pipeline_app.command("backfill")
def backfill_command(
    first: Annotated[datetime, typer.Argument(formats=["%Y-%m-%d"], help="First day (UTC).")],
    last: Annotated[datetime, typer.Argument(formats=["%Y-%m-%d"], help="Last day.")],
    cassandra: CassandraOption = True,
) -> None:
    """Gold and features for every day of FIRST..LAST (silver once); progress on stderr."""
    from recsys_pipelines.daily import backfill

    with _context() as ctx, _daily_context(ctx, cassandra) as daily, _cassandra_errors():
        reports = backfill(daily, first.date(), last.date(), progress=_say)
    total = sum(sum(r.seconds.values()) for r in reports)
    typer.echo(f"backfilled {len(reports)} day(s) in {total:.1f} s")


@pipeline_app.command("training-set")
def training_set_command(
    first: Annotated[datetime, typer.Argument(formats=["%Y-%m-%d"], help="First label day.")],
    last: Annotated[datetime, typer.Argument(formats=["%Y-%m-%d"], help="Last label day.")],
    negatives: Annotated[
        int,
        typer.Option(
            min=0, max=100, help="Sampled negatives per positive, members without impressions only."
        ),
    ] = 4,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the negative sampling.")] = 0,
    unplayed_share: Annotated[
        float,
        typer.Option(min=0.0001, max=1.0, help="Share of unplayed impressions kept (all played)."),
    ] = 1.0,
) -> None:
    """Point-in-time training examples labelled FIRST..LAST into `training_examples`."""
    from recsys_pipelines.training import build_training_set, write_training_set

    with _context() as ctx:
        lake = ctx.settings.lake
        rows, report = build_training_set(
            ctx.catalog,
            lake,
            ctx.pipelines,
            first.date(),
            last.date(),
            negatives=negatives,
            seed=seed,
            progress=_say,
        )
        write_training_set(ctx.catalog, lake, rows, report, seed)
    sources = ", ".join(f"{k} {v}" for k, v in report.by_source.items())
    labels = ", ".join(f"{k} {v}" for k, v in report.positives.items())
    typer.echo(f"training_examples: {report.rows} rows ({sources}); positives: {labels}")


@pipeline_app.command("bootstrap")
def bootstrap_command(
    as_of: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="The day models and lists are computed as of; default: the data's latest event "
            "day (imported history keeps its own dates).",
        ),
    ] = None,
    label_days: Annotated[
        int, typer.Option(min=1, max=90, help="Training label days, ending at the as-of day.")
    ] = 7,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="First wait for bronze to catch up.")
    ] = True,
    cassandra: CassandraOption = True,
    models: Annotated[
        bool, typer.Option("--models/--no-models", help="Train and register the models.")
    ] = True,
) -> None:
    """Everything from the events to registered models: bronze catch-up, silver, features,
    training set, models (ONNX, FAISS, registry), fallback lists. Progress on stderr."""
    from recsys_pipelines.bootstrap import BootstrapOptions, bootstrap

    options = BootstrapOptions(
        as_of=as_of.date() if as_of else None,
        label_days=label_days,
        wait=wait,
        cassandra=cassandra,
        models=models,
    )
    with (
        _context() as ctx,
        _daily_context(ctx, cassandra) as daily,
        _cassandra_errors(),
        _registry_errors(),
    ):
        report = bootstrap(
            ctx.settings, ctx.catalog, options, progress=_say, cassandra=daily.cassandra
        )
    _print_bootstrap(report)


def _print_bootstrap(report: BootstrapReport) -> None:
    typer.echo(f"bootstrap as of {report.as_of} done in {report.total_s:.1f} s")
    for stage, seconds in report.seconds.items():
        note = report.notes.get(stage, "")
        typer.echo(f"  {stage:<13} {seconds:7.1f} s  {note}")
    current = ", ".join(f"{name} {version}" for name, version in sorted(report.registered.items()))
    typer.echo(f"registered (current): {current or 'nothing'}")


@pipeline_app.command("first-run")
def first_run_command(
    rate: Annotated[
        float, typer.Option(min=1, max=100_000, help="Events/s of the traffic burst.")
    ] = 500,
    duration: Annotated[
        float, typer.Option(min=1, max=3600, help="Seconds of the traffic burst.")
    ] = 60,
) -> None:
    """What `make up` runs: nothing when the models are registered; otherwise the default world,
    a burst of simulated traffic (each only if missing), then the bootstrap."""
    from recsys_pipelines.firstrun import first_run

    started = time.perf_counter()
    with (
        _context() as ctx,
        _daily_context(ctx, True) as daily,
        _cassandra_errors(),
        _registry_errors(),
    ):
        report = first_run(
            ctx.settings,
            ctx.catalog,
            rate=rate,
            duration_s=duration,
            progress=typer.echo,
            cassandra=daily.cassandra,
        )
    if report is not None:
        _print_bootstrap(report)
        typer.echo(f"first run done in {time.perf_counter() - started:.1f} s")


@pipeline_app.command("fallbacks")
def fallbacks_command(as_of: AsOfOption = None) -> None:
    """Fallback lists (per country, country x genre, global) to the registry and Redis;
    default as-of: the data's latest event day."""
    from recsys.models import ModelRegistry
    from recsys_pipelines.errors import PipelineError
    from recsys_pipelines.fallbacks import run_fallbacks
    from recsys_pipelines.silver import latest_event_day

    with _context() as ctx, _registry_errors():
        day = as_of.date() if as_of else latest_event_day(ctx.catalog, ctx.settings.lake)
        if day is None:
            raise PipelineError("the lake holds no plays or ratings: nothing to rank")
        models = ctx.settings.models
        registry = ModelRegistry.from_settings(models)
        report = run_fallbacks(ctx.settings, ctx.catalog, registry, day, progress=_say)
    typer.echo(
        f"fallbacks {report.version} as of {day}: {report.lists} lists, "
        f"{report.countries} countries, {report.redis_keys} Redis keys"
    )


@contextmanager
def _registry_errors() -> Iterator[None]:
    """Registry, Redis and file-system failures end the command with one line."""
    from redis.exceptions import RedisError

    from recsys.models import RegistryError

    try:
        yield
    except RegistryError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
    except RedisError as exc:
        typer.secho(f"error: Redis: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
    except OSError as exc:  # the registry root: permissions, a full disk
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None


# --- analytics ... ----------------------------------------------------------------------------


def _print_answer(name: str, country: str | None, as_of: datetime | None) -> None:
    from recsys_pipelines.gold import QUESTIONS, answer
    from recsys_pipelines.textable import format_table

    with _context() as ctx:
        day = _day(as_of)
        rows = answer(ctx.catalog, ctx.settings.lake, ctx.pipelines, name, day, country)
    question = QUESTIONS[name]
    typer.echo(f"{question.summary} As of {day}" + (f", {country.upper()}" if country else ""))
    shown = [c for c in rows.column_names if c != "as_of_date"]
    typer.echo(format_table(rows, shown) if rows.num_rows else "(no rows)")


@analytics_app.command("top-titles")
def top_titles(country: CountryOption = None, as_of: AsOfOption = None) -> None:
    """Top 10 titles per country by hours viewed over the 7 days ending on the as-of day."""
    _print_answer("top-titles", country, as_of)


@analytics_app.command("completion-rate")
def completion_rate(country: CountryOption = None, as_of: AsOfOption = None) -> None:
    """Completion rate per title and country, titles released in the 6 months before as-of."""
    _print_answer("completion-rate", country, as_of)


@analytics_app.command("overlapping-sessions")
def overlapping_sessions(country: CountryOption = None, as_of: AsOfOption = None) -> None:
    """Members with overlapping sessions (data quality) among sessions started on as-of."""
    if country is not None:
        typer.secho("error: overlapping-sessions has no --country", fg="red", err=True)
        raise typer.Exit(code=1)
    _print_answer("overlapping-sessions", None, as_of)


@analytics_app.command("questions")
def questions() -> None:
    """The seed's questions: which ones are answered, and why the others cannot be."""
    from recsys_pipelines.questions import SUMMARIES, UNANSWERABLE

    for name, summary in SUMMARIES.items():
        typer.echo(f"{name:22s} {summary}")
    typer.echo("")
    typer.echo("Not answerable from event schema v1:")
    for name, why in UNANSWERABLE.items():
        typer.echo(f"{name:22s} {why}")


# --- recsys recommend-offline (a top-level command: pyproject's "recsys.cli" entry point) -----


def recommend_offline_command(
    out: Annotated[Path, typer.Option("--out", help="File to write (TSV, replaced atomically).")],
    k: Annotated[int, typer.Option("--k", min=1, max=1000, help="Titles per member.")] = 10,
    users: Annotated[
        Path | None,
        typer.Option("--users", help="Only these members: a file of ids, one a line."),
    ] = None,
) -> None:
    """Top-K titles per member (never one already played) through the current two_tower and
    ranker models: user_id<TAB>title_id<TAB>rank<TAB>score."""
    from recsys.models import ModelRegistry
    from recsys_pipelines.recommend_offline import read_user_list, recommend_offline

    with _context() as ctx:
        wanted = read_user_list(users) if users is not None else None
        registry = ModelRegistry(ctx.settings.models.root)
        report = recommend_offline(
            ctx.settings, registry, k=k, out=out, users=wanted, progress=_say
        )
    typer.echo(
        f"{report.lines} recommendations for {report.members} members in {out} "
        f"(two_tower {report.two_tower}, ranker {report.ranker or 'none'}; "
        f"{report.seconds:.1f} s)"
    )
