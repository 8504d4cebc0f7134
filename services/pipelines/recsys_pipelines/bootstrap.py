"""``recsys pipeline bootstrap``: from the events in Kafka to registered models, in one command.

    report = bootstrap(settings, options, progress=print)

Stages, each timed: wait until the bronze lake has caught up with the events topic → silver
(incremental) → the as-of day (the data's own latest event day unless given: imported history
such as MovieLens 1998 keeps its 30/90/365-day windows full) → daily features (the days the
training labels need, and the as-of day, which also goes to Cassandra for serving) → training
set (label days whose 24 h horizon has ended) → models
(``recsys_pipelines.learning.train_and_register``: baselines, two-tower, ranker, ONNX, FAISS,
registry) → fallback lists (registry + Redis). Every stage is idempotent, so a failed bootstrap is
simply run again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from pyiceberg.catalog import Catalog

from recsys.config import Settings
from recsys.features import Entity
from recsys.models import ModelRegistry
from recsys_pipelines.catchup import wait_for_bronze
from recsys_pipelines.contracts import FEATURES_TITLE_DAILY, FEATURES_USER_DAILY
from recsys_pipelines.dates import today_utc
from recsys_pipelines.errors import PipelineError
from recsys_pipelines.fallbacks import run_fallbacks
from recsys_pipelines.features_daily import TITLE_FEATURES, USER_FEATURES, compute_features
from recsys_pipelines.lakeio import title_names
from recsys_pipelines.learning import train_and_register
from recsys_pipelines.silver import latest_event_day, run_silver
from recsys_pipelines.tables import load_existing, open_table, replace_partitions

if TYPE_CHECKING:
    from recsys.clients.cassandra import CassandraClient
    from recsys_pipelines.learning import LearningConfig

__all__ = ["BootstrapOptions", "BootstrapReport", "bootstrap", "label_days"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BootstrapOptions:
    as_of: date | None = None  # None: the latest event day in silver
    label_days: int = 7  # training label days, ending at the as-of day
    wait: bool = True  # wait for the bronze lake to catch up first
    cassandra: bool = True  # the as-of day's features to Cassandra (serving)
    models: bool = True  # train and register (recsys_pipelines.learning)
    negatives: int = 4  # sampled negatives per positive, members without impressions
    seed: int = 0
    events_topic: str | None = None  # what the bronze writer archives; None: the ingest's topic
    learning: LearningConfig | None = None  # models' hyper-parameters; None: the defaults


@dataclass
class BootstrapReport:
    as_of: date | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> wall seconds
    notes: dict[str, str] = field(default_factory=dict)  # stage -> what it did
    registered: dict[str, str] = field(default_factory=dict)  # model -> current version

    @property
    def total_s(self) -> float:
        return sum(self.seconds.values())


def label_days(as_of: date, days: int, today: date) -> tuple[date, date] | None:
    """The training label range: ``days`` days ending at ``as_of``, cut where a label's 24 h
    horizon has not ended yet (the day before yesterday at the latest); None if nothing is left."""
    last = min(as_of, today - timedelta(days=2))
    first = as_of - timedelta(days=days - 1)
    return (first, last) if days > 0 and first <= last else None


@contextmanager
def _stage(report: BootstrapReport, name: str, progress: Progress) -> Iterator[None]:
    progress(f"[{name}] ...")
    started = time.perf_counter()
    yield
    report.seconds[name] = time.perf_counter() - started
    note = report.notes.get(name, "")
    progress(f"[{name}] {report.seconds[name]:.1f} s" + (f": {note}" if note else ""))


def bootstrap(
    settings: Settings,
    catalog: Catalog,
    options: BootstrapOptions,
    *,
    progress: Progress = lambda _: None,
    cassandra: CassandraClient | None = None,
) -> BootstrapReport:
    """Run every stage; PipelineError (one line) on bad input or a missing prerequisite."""
    lake = settings.lake
    report = BootstrapReport()
    # Fail before waiting on anything when there is no catalog to work with. (Bronze may not
    # exist yet: on a fresh platform the writer creates it with its first commit.)
    load_existing(catalog, lake, "dim_titles")
    registry = ModelRegistry.from_settings(settings.models)

    if options.wait:
        with _stage(report, "catch-up", progress):
            lag = wait_for_bronze(
                settings,
                catalog,
                timeout_s=settings.models.catchup_timeout_s,
                topic=options.events_topic or settings.ingest.topic,
                progress=progress,
            )
            report.notes["catch-up"] = f"bronze holds all {sum(lag.end.values())} records"

    load_existing(catalog, lake, settings.pipelines.bronze_table)
    with _stage(report, "silver", progress):
        silver = run_silver(catalog, lake, settings.pipelines)
        written = sum(t.rows for t in silver.tables if t.committed)
        report.notes["silver"] = f"{written} rows written" if written else "up to date"

    as_of = options.as_of or latest_event_day(catalog, lake)
    if as_of is None:
        raise PipelineError(
            "the lake holds no plays or ratings: import data (`recsys import ...`) or generate "
            "traffic (`recsys simulate`), with the bronze writer running"
        )
    if as_of > today_utc():
        raise PipelineError(f"--as-of {as_of} is in the future (UTC)")
    report.as_of = as_of
    progress(f"as of {as_of}" + ("" if options.as_of else " (the data's latest event day)"))
    labels = label_days(as_of, options.label_days, today_utc())

    with _stage(report, "features", progress):
        first = labels[0] - timedelta(days=1) if labels else as_of
        days = [first + timedelta(days=i) for i in range((as_of - first).days + 1)]
        members = _daily_features(
            settings, catalog, registry, days, cassandra if options.cassandra else None
        )
        report.notes["features"] = (
            f"{len(days)} day(s) {days[0]}..{days[-1]}, {members} members on {as_of}"
            + (", to Cassandra" if options.cassandra and cassandra is not None else "")
        )

    with _stage(report, "training-set", progress):
        report.notes["training-set"] = _training_set(settings, catalog, labels, options)

    if options.models:
        with _stage(report, "models", progress):
            summary = train_and_register(
                settings,
                registry,
                as_of=as_of,
                progress=progress,
                promote=True,
                config=options.learning,
            )
            report.notes["models"] = ", ".join(
                f"{name} {version}" for name, version in sorted(summary.versions.items())
            )

    with _stage(report, "fallbacks", progress):
        fallbacks = run_fallbacks(settings, catalog, registry, as_of, progress=progress)
        report.notes["fallbacks"] = (
            f"{fallbacks.version}: {fallbacks.lists} lists, {fallbacks.countries} countries"
        )

    for name in registry.names():
        token = registry.current_token(name)
        if token is not None:
            report.registered[name] = token
    return report


def _daily_features(
    settings: Settings,
    catalog: Catalog,
    registry: ModelRegistry,
    days: list[date],
    cassandra: CassandraClient | None,
) -> int:
    """Feature snapshots of ``days`` in the lake; the last day's also to Cassandra. Returns the
    members of the last day."""
    from recsys.features.title_table import publish_title_features
    from recsys_pipelines.feature_store import write_features

    lake, pipelines = settings.lake, settings.pipelines
    members = 0
    for day in days:
        users, titles = compute_features(catalog, lake, pipelines, day)
        properties = {"recsys.features.date": day.isoformat()}
        for contract, rows in ((FEATURES_USER_DAILY, users), (FEATURES_TITLE_DAILY, titles)):
            replace_partitions(
                open_table(catalog, lake, contract), contract, rows, [day], properties
            )
        members = users.num_rows
    if cassandra is not None:
        keyspace, n = settings.cassandra.keyspace, pipelines.cassandra_concurrency
        for entity, rows, key, features in (
            (Entity.USER, users, "user_id", USER_FEATURES),
            (Entity.TITLE, titles, "title_id", TITLE_FEATURES),
        ):
            write_features(
                cassandra, keyspace, entity, rows, key, features, days[-1], concurrency=n
            )
        # The serving copy of the title features, beside their Cassandra rows.
        publish_title_features(registry, titles, days[-1], title_names(catalog, lake))
    return members


def _training_set(
    settings: Settings,
    catalog: Catalog,
    labels: tuple[date, date] | None,
    options: BootstrapOptions,
) -> str:
    from recsys_pipelines.training import build_training_set, write_training_set

    if labels is None:
        return (
            "no label day has a finished 24 h horizon yet (all events are from today or yesterday)"
        )
    rows, report = build_training_set(
        catalog,
        settings.lake,
        settings.pipelines,
        labels[0],
        labels[1],
        negatives=options.negatives,
        seed=options.seed,
    )
    write_training_set(catalog, settings.lake, rows, report, options.seed)
    return f"{report.rows} examples labelled {labels[0]}..{labels[1]}"
