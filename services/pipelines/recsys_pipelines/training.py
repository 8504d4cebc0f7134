"""Point-in-time-correct training sets: labels from silver, features as of each label's instant.

    rows, report = build_training_set(catalog, lake, settings, first_day, last_day)

**Labels.** Every title shown in an impression is an example at the instant it was shown:
``played`` if the member played it within :data:`LABEL_HORIZON`, ``completed`` if that playback
completed (a complete event or > 90 % watched), ``rated_high`` if they rated it >= 4 within the
horizon. Members with no impression in the range (imported datasets: MovieLens and MovieTweetings
have ratings only) get one positive per playback, at the playback's first event, and
``negatives`` **sampled** negatives at the same instant: titles of the same catalog source the
member did not play in the range, drawn uniformly with a seeded generator (``source`` says
``sampled_negative``; they are assumed negatives, not observed ones).

**Features, as of the label's instant T.** Batch features come from the daily snapshot of the
day before T's date (the newest snapshot complete at T: the snapshot of T's own date uses events
up to the end of that day, after T). Real-time features are rebuilt from bronze events strictly
before T with the stream job's own fold (:mod:`recsys_pipelines.realtime_asof`). So no value
computed from an event at or after T reaches the row; ``tests/unit/pipelines/test_training.py``
checks it by adding events after the labels and comparing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import TYPE_CHECKING, Any

from pyiceberg.catalog import Catalog

from recsys.config import LakeSettings
from recsys_pipelines.contracts import (
    FEATURES_TITLE_DAILY,
    FEATURES_USER_DAILY,
    SILVER_IMPRESSIONS,
    SILVER_PLAYBACK,
    SILVER_RATINGS,
    TRAINING_EXAMPLES,
)
from recsys_pipelines.daily import check_day_ended
from recsys_pipelines.engine import Engine, render, sql_text
from recsys_pipelines.errors import PipelineError
from recsys_pipelines.features_daily import fill_registry_defaults
from recsys_pipelines.lakeio import read_bronze, read_titles
from recsys_pipelines.realtime_asof import REALTIME_FEATURES, catalog_of, realtime_at
from recsys_pipelines.settings import PipelineSettings
from recsys_pipelines.tables import conform, open_table, read_table, replace_partitions

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

__all__ = ["LABEL_HORIZON", "TrainingReport", "build_training_set", "write_training_set"]

LABEL_HORIZON = timedelta(hours=24)
# Real-time values older than their TTL are defaults anyway: no need to replay further back.
REALTIME_LOOKBACK = max(f.ttl for f in REALTIME_FEATURES if f.ttl is not None)
REALTIME_CHUNK_DAYS = 31
_HORIZON_US = int(LABEL_HORIZON.total_seconds() * 1_000_000)
_LABEL_COLUMNS = [
    "label_date",
    "example_id",
    "user_id",
    "title_id",
    "label_time",
    "source",
    "played",
    "completed",
    "rated_high",
]


@dataclass
class TrainingReport:
    first: date
    last: date
    rows: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    positives: dict[str, int] = field(default_factory=dict)  # label -> count of True
    seconds: dict[str, float] = field(default_factory=dict)


def build_training_set(
    catalog: Catalog,
    lake: LakeSettings,
    settings: PipelineSettings,
    first: date,
    last: date,
    *,
    negatives: int = 4,
    seed: int = 0,
    unplayed_share: float = 1.0,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[pa.Table, TrainingReport]:
    """Examples labelled on ``first .. last`` with their point-in-time features.

    ``unplayed_share`` < 1 keeps that share of the impressions that were not played (chosen by a
    hash of the example id, so the same ones each time) and every played one: a full day of
    impressions is millions of mostly negative rows.
    """
    if not 0.0 < unplayed_share <= 1.0:
        raise PipelineError(f"unplayed share must be in (0, 1], not {unplayed_share}")
    import pyarrow as pa

    if first > last:
        raise PipelineError(f"label range is empty: {first} is after {last}")
    # A label looks LABEL_HORIZON ahead: its day's labels are final once the next day has ended.
    check_day_ended(last + timedelta(days=1))
    report = TrainingReport(first, last)
    clock = time.perf_counter()
    titles = read_titles(catalog, lake)
    labels = _labels(catalog, lake, settings, first, last, titles, negatives, seed)
    if unplayed_share < 1.0:
        labels = _downsample_unplayed(labels, unplayed_share)
    report.seconds["labels"] = time.perf_counter() - clock
    progress(f"training: {labels.num_rows} labelled examples ({report.seconds['labels']:.1f} s)")

    clock = time.perf_counter()
    with_batch = _join_batch_features(catalog, lake, settings, labels, first, last)
    report.seconds["batch_features"] = time.perf_counter() - clock

    clock = time.perf_counter()
    realtime = _realtime_features(catalog, lake, settings, with_batch, titles)
    for f in REALTIME_FEATURES:
        values = [r[f.name] for r in realtime]
        with_batch = with_batch.append_column(
            f.name, pa.array(values, TRAINING_EXAMPLES.arrow.field(f.name).type)
        )
    report.seconds["realtime_features"] = time.perf_counter() - clock
    progress(f"training: features joined ({report.seconds['realtime_features']:.1f} s real-time)")

    rows = fill_registry_defaults(conform(with_batch, TRAINING_EXAMPLES)).sort_by(
        [("label_time", "ascending"), ("example_id", "ascending")]
    )
    report.rows = rows.num_rows
    for source in ("impression", "playback", "sampled_negative"):
        report.by_source[source] = sum(1 for s in rows.column("source").to_pylist() if s == source)
    for label in ("played", "completed", "rated_high"):
        report.positives[label] = sum(1 for v in rows.column(label).to_pylist() if v)
    return rows, report


def write_training_set(
    catalog: Catalog, lake: LakeSettings, rows: pa.Table, report: TrainingReport, seed: int
) -> None:
    """Replace the label days of ``report``'s range in ``training_examples`` (one commit)."""
    days = [report.first + timedelta(days=i) for i in range((report.last - report.first).days + 1)]
    table = open_table(catalog, lake, TRAINING_EXAMPLES)
    properties = {
        "recsys.training.range": f"{report.first}..{report.last}",
        "recsys.training.horizon_h": str(int(LABEL_HORIZON.total_seconds() // 3600)),
        "recsys.training.seed": str(seed),
    }
    replace_partitions(table, TRAINING_EXAMPLES, rows, days, properties)


# --- labels ------------------------------------------------------------------------------------


def _labels(
    catalog: Catalog,
    lake: LakeSettings,
    settings: PipelineSettings,
    first: date,
    last: date,
    titles: pa.Table,
    negatives: int,
    seed: int,
) -> pa.Table:
    import pyarrow as pa

    day = timedelta(days=1)
    impressions = read_table(catalog, lake, SILVER_IMPRESSIONS, first, last)
    # A session dated the day before can hold plays after midnight; the horizon reaches a day on.
    playback = read_table(catalog, lake, SILVER_PLAYBACK, first - day, last + day)
    ratings = read_table(catalog, lake, SILVER_RATINGS, first, last + day)
    params = {"first": first, "last": last, "horizon_us": _HORIZON_US}
    with Engine(settings) as engine:
        engine.register("impressions", impressions)
        engine.register("playback", playback)
        engine.register("ratings", ratings)
        shown = engine.run("training_labels", **params)
        positives = engine.run("training_positives", **params)
    sampled = _sample_negatives(positives, playback, titles, negatives, seed)
    schema = shown.schema
    parts = [t.select(_LABEL_COLUMNS).cast(schema) for t in (shown, positives, sampled)]
    return pa.concat_tables(parts)


def _downsample_unplayed(labels: pa.Table, share: float) -> pa.Table:
    import zlib

    import pyarrow as pa

    bound = int(share * 2**32)
    keep = [
        played or source != "impression" or zlib.crc32(example_id.encode()) < bound
        for example_id, source, played in zip(
            labels.column("example_id").to_pylist(),
            labels.column("source").to_pylist(),
            labels.column("played").to_pylist(),
            strict=True,
        )
    ]
    return labels.filter(pa.array(keep, pa.bool_()))


def _sample_negatives(
    positives: pa.Table, playback: pa.Table, titles: pa.Table, per_positive: int, seed: int
) -> pa.Table:
    """``per_positive`` titles per positive, from the positive title's catalog source, that the
    member had not played by the end of the label's horizon; same instant, every label False."""
    import numpy as np
    import pyarrow as pa

    by_source: dict[str, list[str]] = {}
    source_of: dict[str, str] = {}
    for title_id, source in zip(
        titles.column("title_id").to_pylist(), titles.column("source").to_pylist(), strict=True
    ):
        by_source.setdefault(source, []).append(title_id)
        source_of[title_id] = source
    played: dict[str, list[tuple[str, int]]] = {}
    for user, title, first_at in zip(
        playback.column("user_id").to_pylist(),
        playback.column("title_id").to_pylist(),
        playback.column("first_event_at").to_pylist(),
        strict=True,
    ):
        played.setdefault(user, []).append((title, int(first_at.timestamp() * 1_000_000)))
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for row in positives.sort_by("example_id").to_pylist():
        pool = by_source.get(source_of.get(row["title_id"], ""), [])
        at_us = int(row["label_time"].timestamp() * 1_000_000)
        # A negative is a title not played by the end of the label's horizon, as for impressions;
        # what the member played later does not matter (nor may it: it is after the label).
        seen = {t for t, t_us in played.get(row["user_id"], []) if t_us <= at_us + _HORIZON_US}
        if per_positive <= 0 or len(pool) <= len(seen):
            continue
        chosen: list[str] = []
        for index in rng.permutation(len(pool))[: per_positive * 4 + len(seen)]:
            candidate = pool[int(index)]
            if candidate not in seen and candidate not in chosen:
                chosen.append(candidate)
                if len(chosen) == per_positive:
                    break
        for title_id in chosen:
            rows.append(
                {
                    **row,
                    "example_id": f"sampled_negative:{row['user_id']}:{title_id}:{at_us}",
                    "title_id": title_id,
                    "source": "sampled_negative",
                    "played": False,
                    "completed": False,
                    "rated_high": False,
                }
            )
    return pa.Table.from_pylist(rows, schema=positives.schema)


# --- features ----------------------------------------------------------------------------------


def _join_batch_features(
    catalog: Catalog,
    lake: LakeSettings,
    settings: PipelineSettings,
    labels: pa.Table,
    first: date,
    last: date,
) -> pa.Table:
    """Each example with the user's and the title's snapshot of the day before its label day."""
    day = timedelta(days=1)
    user_snap = read_table(catalog, lake, FEATURES_USER_DAILY, first - day, last - day)
    title_snap = read_table(catalog, lake, FEATURES_TITLE_DAILY, first - day, last - day)
    # The title snapshot has every catalog title each day: an absent day was never computed.
    have = set(title_snap.column("feature_date").to_pylist())
    need = {d - day for d in labels.column("label_date").to_pylist()}
    missing = sorted(need - have)
    if missing:
        raise PipelineError(
            f"no daily feature snapshot for {', '.join(str(d) for d in missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}: run `recsys pipeline backfill "
            f"{missing[0]} {missing[-1]}` first"
        )
    user_cols = ", ".join(f"u.{c}" for c in FEATURES_USER_DAILY.columns[2:])
    title_cols = ", ".join(f"t.{c}" for c in FEATURES_TITLE_DAILY.columns[2:])
    sql = f"""
        SELECT l.*, l.label_date - INTERVAL 1 DAY AS features_date, {user_cols}, {title_cols}
        FROM labels l
        LEFT JOIN user_snap u
            ON u.user_id = l.user_id AND u.feature_date = l.label_date - INTERVAL 1 DAY
        LEFT JOIN title_snap t
            ON t.title_id = l.title_id AND t.feature_date = l.label_date - INTERVAL 1 DAY
    """
    with Engine(settings) as engine:
        engine.register("labels", labels)
        engine.register("user_snap", user_snap)
        engine.register("title_snap", title_snap)
        rows = engine.query(sql)
    import pyarrow as pa
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    index = rows.schema.get_field_index("features_date")
    return rows.set_column(
        index, "features_date", pc.cast(rows.column("features_date"), pa.date32())
    )


def _realtime_features(
    catalog: Catalog,
    lake: LakeSettings,
    settings: PipelineSettings,
    examples: pa.Table,
    titles: pa.Table,
) -> list[dict[str, Any]]:
    """The real-time user features of every example, rebuilt from bronze, for up to
    REALTIME_CHUNK_DAYS label days at a time (each chunk reads the lookback before it)."""
    import pyarrow.compute as pc

    lookup = catalog_of(titles)
    out: list[dict[str, Any]] = [{} for _ in range(examples.num_rows)]
    label_days = examples.column("label_date").to_pylist()
    users = examples.column("user_id").to_pylist()
    times = [int(t.timestamp() * 1_000_000) for t in examples.column("label_time").to_pylist()]
    days = sorted(set(label_days))
    for start_index in range(0, len(days), REALTIME_CHUNK_DAYS):
        chunk = set(days[start_index : start_index + REALTIME_CHUNK_DAYS])
        indexes = [i for i, d in enumerate(label_days) if d in chunk]
        chunk_users = sorted({users[i] for i in indexes})
        start = datetime.combine(min(chunk), dtime(), UTC) - REALTIME_LOOKBACK
        end = datetime.combine(max(chunk) + timedelta(days=1), dtime(), UTC)
        bronze = read_bronze(catalog, lake, settings.bronze_table, start, end)
        bronze = bronze.filter(pc.is_in(bronze.column("user_id"), value_set=_array(chunk_users)))
        with Engine(settings) as engine:
            engine.register("bronze", bronze)
            # De-duplicated as for silver; the session columns are not used here.
            events = engine.query(render(sql_text("silver_events"), {"gap_us": 1})).select(
                [
                    "event_id",
                    "event_type",
                    "user_id",
                    "title_id",
                    "device",
                    "country",
                    "details",
                    "t_us",
                ]
            )
        values = realtime_at(events, lookup, [(users[i], times[i]) for i in indexes])
        for i, v in zip(indexes, values, strict=True):
            out[i] = v
    return out


def _array(values: list[str]) -> pa.Array:
    import pyarrow as pa

    return pa.array(values, pa.string())
