"""The daily chain for one day: silver (incremental), gold, batch features (lake + Cassandra,
and the title feature table the serving services hold in memory).

    report = run_daily(ctx, date(2026, 11, 28), progress=print)
    reports = backfill(ctx, date(2026, 11, 1), date(2026, 11, 28), progress=print)

A day is run once it has ended (UTC); a day with no event in silver is refused (nothing was
archived for it: is the bronze writer running?) unless ``allow_empty`` (a backfill goes through
quiet days: their features still move as windows slide). Each stage is timed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta

from pyiceberg.catalog import Catalog

from recsys.clients.cassandra import CassandraClient
from recsys.config import Settings
from recsys.features import Entity
from recsys.features.title_table import publish_title_features
from recsys.models.registry import ModelRegistry
from recsys_pipelines.contracts import FEATURES_TITLE_DAILY, FEATURES_USER_DAILY, SILVER_SESSIONS
from recsys_pipelines.dates import today_utc
from recsys_pipelines.errors import PipelineError
from recsys_pipelines.feature_store import write_features
from recsys_pipelines.features_daily import TITLE_FEATURES, USER_FEATURES, compute_features
from recsys_pipelines.gold import materialize_gold
from recsys_pipelines.lakeio import title_names
from recsys_pipelines.settings import PipelineSettings
from recsys_pipelines.silver import run_silver
from recsys_pipelines.tables import open_table, read_table, replace_partitions

__all__ = [
    "DailyContext",
    "DailyReport",
    "backfill",
    "check_day_ended",
    "run_daily",
]


@dataclass
class DailyContext:
    settings: Settings
    pipelines: PipelineSettings
    catalog: Catalog
    cassandra: CassandraClient | None  # None: lake only
    # Where the title feature table for serving is published beside the Cassandra write;
    # None: not published.
    registry: ModelRegistry | None = None


@dataclass
class DailyReport:
    day: date
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> wall seconds
    counts: dict[str, int] = field(default_factory=dict)


def check_day_ended(day: date) -> date:
    today = today_utc()
    if day >= today:
        latest = today - timedelta(days=1)
        when = "is in the future" if day > today else "has not ended yet"
        raise PipelineError(f"day {day} {when} (UTC); the latest day to run is {latest}")
    return day


@contextmanager
def _timed(report: DailyReport, stage: str, progress: Callable[[str], None]) -> Iterator[None]:
    started = time.perf_counter()
    yield
    report.seconds[stage] = time.perf_counter() - started
    progress(f"{report.day} {stage}: {report.seconds[stage]:.2f} s")


def run_daily(
    ctx: DailyContext,
    day: date,
    *,
    progress: Callable[[str], None] = lambda _: None,
    allow_empty: bool = False,
    silver: bool = True,
    to_cassandra: bool = True,
) -> DailyReport:
    check_day_ended(day)
    lake = ctx.settings.lake
    report = DailyReport(day)
    if silver:
        with _timed(report, "silver", progress):
            run_silver(ctx.catalog, lake, ctx.pipelines, progress=progress)
    sessions = read_table(ctx.catalog, lake, SILVER_SESSIONS, day, day).num_rows
    report.counts["sessions"] = sessions
    if sessions == 0 and not allow_empty:
        raise PipelineError(
            f"no events on {day} in the lake: bronze has nothing for that day "
            "(is the bronze writer running?)"
        )
    with _timed(report, "gold", progress):
        for name, rows in materialize_gold(ctx.catalog, lake, ctx.pipelines, day).items():
            report.counts[name] = rows
    with _timed(report, "features", progress):
        users, titles = compute_features(ctx.catalog, lake, ctx.pipelines, day)
        report.counts["users"], report.counts["titles"] = users.num_rows, titles.num_rows
    with _timed(report, "snapshot", progress):
        properties = {"recsys.features.date": day.isoformat()}
        for contract, rows in ((FEATURES_USER_DAILY, users), (FEATURES_TITLE_DAILY, titles)):
            table = open_table(ctx.catalog, lake, contract)
            replace_partitions(table, contract, rows, [day], properties)
    if to_cassandra and ctx.cassandra is not None:
        with _timed(report, "cassandra", progress):
            keyspace, n = ctx.settings.cassandra.keyspace, ctx.pipelines.cassandra_concurrency
            write_features(
                ctx.cassandra,
                keyspace,
                Entity.USER,
                users,
                "user_id",
                USER_FEATURES,
                day,
                concurrency=n,
            )
            write_features(
                ctx.cassandra,
                keyspace,
                Entity.TITLE,
                titles,
                "title_id",
                TITLE_FEATURES,
                day,
                concurrency=n,
            )
        if ctx.registry is not None:
            with _timed(report, "title table", progress):
                names = title_names(ctx.catalog, lake)
                publish_title_features(ctx.registry, titles, day, names)
    return report


def backfill(
    ctx: DailyContext,
    first: date,
    last: date,
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> list[DailyReport]:
    """Every day of ``first .. last``: silver once, then gold and features day by day.

    Only the last day goes to Cassandra, and only when it is yesterday (the day serving should
    see): writing an older day would replace newer serving values with older ones.
    """
    if first > last:
        raise PipelineError(f"backfill range is empty: {first} is after {last}")
    check_day_ended(last)
    days = (last - first).days + 1
    if days > ctx.pipelines.max_backfill_days:
        raise PipelineError(
            f"backfill of {days} days exceeds RECSYS_PIPELINES__MAX_BACKFILL_DAYS="
            f"{ctx.pipelines.max_backfill_days}"
        )
    started = time.perf_counter()
    run_silver(ctx.catalog, ctx.settings.lake, ctx.pipelines, progress=progress)
    reports = []
    serving_day = today_utc() - timedelta(days=1)
    for index in range(days):
        day = first + timedelta(days=index)
        report = run_daily(
            ctx, day, allow_empty=True, silver=False, to_cassandra=day == serving_day
        )
        reports.append(report)
        elapsed = time.perf_counter() - started
        eta = elapsed / (index + 1) * (days - index - 1)
        progress(
            f"[{index + 1}/{days}] {day}: {report.counts.get('users', 0)} members, "
            f"{report.counts.get('sessions', 0)} sessions, "
            f"{sum(report.seconds.values()):.1f} s (elapsed {elapsed:.0f} s, ~{eta:.0f} s left)"
        )
    return reports
