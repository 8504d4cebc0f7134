"""The lake tables the pipelines write, declared once: name, columns, partition column.

Downstream jobs (the training of the next issue, the analytics) read these as contracts; a column
is only ever added (new field id), never renamed, retyped or reused. docs/lake.md shows each
layout with what its rows mean. Every table is partitioned by identity on a ``date`` column
(``event_date``, ``as_of_date``, ``feature_date`` or ``label_date``): identity partitions need no
``pyiceberg-core`` transform to write, and Spark, Trino and DuckDB prune on them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import (
    BooleanType,
    DateType,
    DoubleType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from recsys.features import FEATURES, Dtype, Entity, FeatureDefinition, FeatureKind

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

__all__ = [
    "FEATURES_TITLE_DAILY",
    "FEATURES_USER_DAILY",
    "GOLD_COMPLETION_RATE",
    "GOLD_OFFLINE_EVALUATION",
    "GOLD_OVERLAPPING_SESSIONS",
    "GOLD_TOP_TITLES_7D",
    "SILVER_IMPRESSIONS",
    "SILVER_PLAYBACK",
    "SILVER_RATINGS",
    "SILVER_SEARCHES",
    "SILVER_SESSIONS",
    "SILVER_TABLES",
    "TRAINING_EXAMPLES",
    "TableContract",
]

S, L, INT, D, B = StringType(), LongType(), IntegerType(), DoubleType(), BooleanType()
TS, DATE = TimestamptzType(), DateType()


@dataclass(frozen=True)
class TableContract:
    """A lake table: its name, its Iceberg schema and its identity-partition date column."""

    name: str
    schema: Schema
    partition_column: str
    doc: str

    @property
    def spec(self) -> PartitionSpec:
        field = self.schema.find_field(self.partition_column)
        return PartitionSpec(
            PartitionField(
                source_id=field.field_id,
                field_id=1000,
                transform=IdentityTransform(),
                name=self.partition_column,
            )
        )

    @property
    def arrow(self) -> pa.Schema:
        return self.schema.as_arrow()

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.schema.fields]


def _contract(
    name: str, partition: str, doc: str, *columns: tuple[str, IcebergType, str]
) -> TableContract:
    next_id = len(columns) + 1
    fields = []
    for index, (column, type_, column_doc) in enumerate(columns, start=1):
        if isinstance(type_, ListType):
            type_ = ListType(next_id, type_.element_type, element_required=False)
            next_id += 1
        # Optional everywhere: Iceberg then accepts Arrow's nullable columns as they come from
        # the engine; the SQL guarantees the keys are set and the tests check it.
        fields.append(NestedField(index, column, type_, required=False, doc=column_doc or None))
    return TableContract(name, Schema(*fields), partition, doc)


def _list(element: IcebergType) -> ListType:
    return ListType(element_id=0, element_type=element, element_required=False)


# --- silver: cleaned, de-duplicated, sessionized facts ---------------------------------------

SILVER_SESSIONS = _contract(
    "silver_sessions",
    "event_date",
    "One viewing session: a member's events on one device with no gap over 30 minutes.",
    ("event_date", DATE, "UTC date of the session's first event"),
    ("session_id", S, "<user_id>:<device>:<start epoch ms>"),
    ("user_id", S, ""),
    ("device", S, "tv, mobile, ...; 'unknown' when the events had none"),
    ("country", S, "country of the session's latest event"),
    ("started_at", TS, "first event"),
    ("ended_at", TS, "last event"),
    ("duration_sec", L, "ended_at - started_at, whole seconds"),
    ("events", INT, "events in the session (after de-duplication)"),
    ("plays", INT, "play events"),
    ("titles_played", INT, "distinct titles with a play"),
    ("seconds_watched", D, "sum of watched_sec of pause, complete and skip events"),
)

SILVER_PLAYBACK = _contract(
    "silver_playback",
    "event_date",
    "One title watched in one session: every play segment of it merged.",
    ("event_date", DATE, "UTC date of the session's first event"),
    ("session_id", S, ""),
    ("user_id", S, ""),
    ("title_id", S, ""),
    ("device", S, ""),
    ("country", S, "country of the latest event of this title in the session"),
    ("first_event_at", TS, "first play, pause, complete or skip of the title in the session"),
    ("last_event_at", TS, ""),
    ("plays", INT, "play events (starts and resumes)"),
    ("seconds_watched", D, "sum of watched_sec (content seconds) of its pause/complete/skip"),
    ("runtime_sec", L, "runtime of the title (one episode for a series); null if unknown"),
    ("watch_share", D, "seconds_watched / runtime_sec, at most 1.0; null if runtime unknown"),
    ("completed", B, "a complete event, or watch_share > 0.9"),
)

SILVER_RATINGS = _contract(
    "silver_ratings",
    "event_date",
    "One rating event.",
    ("event_date", DATE, "UTC date of rated_at"),
    ("event_id", S, ""),
    ("user_id", S, ""),
    ("title_id", S, ""),
    ("rating", INT, "1 (disliked) to 5 (loved)"),
    ("rated_at", TS, ""),
    ("session_id", S, ""),
    ("device", S, ""),
    ("country", S, ""),
)

SILVER_IMPRESSIONS = _contract(
    "silver_impressions",
    "event_date",
    "One title shown in one row: an impression event exploded by title.",
    ("event_date", DATE, "UTC date of shown_at"),
    ("event_id", S, "the impression event (one per row shown)"),
    ("user_id", S, ""),
    ("title_id", S, ""),
    ("shown_at", TS, ""),
    ("row_name", S, "top_picks, trending_now, search_results, ..."),
    ("row_position", INT, "row index on the page, 0 at the top"),
    ("rank", INT, "title index in the row, 0 leftmost"),
    ("request_id", S, "recommendation response that produced the row; null when none"),
    ("session_id", S, ""),
    ("device", S, ""),
    ("country", S, ""),
)

SILVER_SEARCHES = _contract(
    "silver_searches",
    "event_date",
    "One search event.",
    ("event_date", DATE, "UTC date of searched_at"),
    ("event_id", S, ""),
    ("user_id", S, ""),
    ("query", S, "as typed, trimmed"),
    ("searched_at", TS, ""),
    ("session_id", S, ""),
    ("device", S, ""),
    ("country", S, ""),
)

SILVER_TABLES: tuple[TableContract, ...] = (
    SILVER_SESSIONS,
    SILVER_PLAYBACK,
    SILVER_RATINGS,
    SILVER_IMPRESSIONS,
    SILVER_SEARCHES,
)

# --- gold: the analytics questions, one partition per as-of date -----------------------------

GOLD_TOP_TITLES_7D = _contract(
    "gold_top_titles_7d",
    "as_of_date",
    "Top 10 titles per country by hours viewed over the 7 days ending on as_of_date.",
    ("as_of_date", DATE, "last day of the window (inclusive)"),
    ("country", S, ""),
    ("rank", INT, "1 = most hours"),
    ("title_id", S, ""),
    ("title_name", S, "null if the title is not in dim_titles"),
    ("hours_viewed", D, ""),
    ("viewers", L, "distinct members"),
)

GOLD_COMPLETION_RATE = _contract(
    "gold_completion_rate",
    "as_of_date",
    "Completion rate per title and country, titles released in the 6 months up to as_of_date.",
    ("as_of_date", DATE, ""),
    ("title_id", S, ""),
    ("country", S, ""),
    ("title_name", S, ""),
    ("release_date", DATE, ""),
    ("viewers", L, "distinct members who played it up to as_of_date"),
    ("completions", L, "viewers whose sessions of it, merged, completed it"),
    ("completion_rate", D, "completions / viewers"),
)

GOLD_OVERLAPPING_SESSIONS = _contract(
    "gold_overlapping_sessions",
    "as_of_date",
    "Data quality: pairs of one member's sessions (on different devices) that overlap in time.",
    ("as_of_date", DATE, "sessions that started on this date are checked"),
    ("user_id", S, ""),
    ("session_a", S, "the one that started first (ties: smaller id)"),
    ("session_b", S, ""),
    ("device_a", S, ""),
    ("device_b", S, ""),
    ("a_started_at", TS, ""),
    ("a_ended_at", TS, ""),
    ("b_started_at", TS, ""),
    ("b_ended_at", TS, ""),
    ("overlap_sec", L, "seconds both were open"),
)

GOLD_OFFLINE_EVALUATION = _contract(
    "gold_offline_evaluation",
    "as_of_date",
    "Offline evaluation of the learned models and the baselines on held-out interactions "
    "(docs/learning.md): one row per model and training run.",
    ("as_of_date", DATE, "the training data's last day"),
    ("evaluated_at", TS, "when the run evaluated (one run's rows share it)"),
    ("model", S, "popularity, ease, als, bpr, two_tower, two_tower+ranker"),
    ("k", INT, "list length the metrics are at"),
    ("users", L, "members evaluated"),
    ("precision_at_k", D, ""),
    ("recall_at_k", D, ""),
    ("ndcg_at_k", D, ""),
    ("map_at_k", D, ""),
    ("coverage", D, "distinct titles recommended / catalog titles"),
    ("popularity_bias", D, "mean training-popularity percentile of recommended titles"),
    ("fit_seconds", D, "training and tuning wall time"),
    ("params", S, "JSON of the chosen hyper-parameters"),
    ("split", S, "how the held-out interactions were chosen"),
    ("train_interactions", L, ""),
    ("test_interactions", L, ""),
    ("two_tower_version", S, "registry version published by the run (null if none)"),
    ("ranker_version", S, ""),
)

# --- daily features: one snapshot partition per feature date ---------------------------------

FEATURES_USER_DAILY = _contract(
    "features_user_daily",
    "feature_date",
    "Every batch user feature of the registry as computed at the end of feature_date (UTC).",
    ("feature_date", DATE, "the values use events up to the end of this day"),
    ("user_id", S, ""),
    ("genre_affinity_vector", _list(D), ""),
    ("content_completion_rate_p50", D, ""),
    ("avg_session_duration_min", D, ""),
    ("preferred_time_of_day", L, ""),
    ("language_preferences", _list(S), ""),
    ("country", S, ""),
    ("subscription_tier", S, ""),
    ("watch_hours_30d", D, ""),
    ("watch_hours_90d", D, ""),
    ("watch_hours_365d", D, ""),
    ("top_directors_30d", _list(S), ""),
)

FEATURES_TITLE_DAILY = _contract(
    "features_title_daily",
    "feature_date",
    "Every batch title feature of the registry as computed at the end of feature_date (UTC).",
    ("feature_date", DATE, ""),
    ("title_id", S, ""),
    ("title_genres", _list(S), ""),
    ("release_age_days", L, ""),
    ("title_popularity_30d", D, ""),
    ("title_completion_rate_90d", D, ""),
    ("available_countries", _list(S), ""),
)

# --- training examples ------------------------------------------------------------------------


def _feature_type(definition: FeatureDefinition) -> IcebergType:
    return {
        Dtype.INT64: L,
        Dtype.FLOAT64: D,
        Dtype.STRING: S,
        Dtype.STRING_LIST: _list(S),
        Dtype.FLOAT_VECTOR: _list(D),
    }[definition.dtype]


def _training_contract() -> TableContract:
    # The label columns, then every feature a model may read, named and typed by the registry
    # (user batch, title batch, user real-time): nothing re-declared here.
    features = [
        *FEATURES.select(entity=Entity.USER, kind=FeatureKind.BATCH),
        *FEATURES.select(entity=Entity.TITLE, kind=FeatureKind.BATCH),
        *FEATURES.select(entity=Entity.USER, kind=FeatureKind.REALTIME),
    ]
    return _contract(
        "training_examples",
        "label_date",
        "One labelled (member, title, instant) with every feature as of that instant.",
        ("label_date", DATE, "UTC date of label_time"),
        ("example_id", S, "<impression event id>:<rank>, or <kind>:<user>:<title>:<label µs>"),
        ("user_id", S, ""),
        ("title_id", S, ""),
        (
            "label_time",
            TS,
            "the impression, or the start of the playback; features are as of "
            "just before this instant",
        ),
        ("source", S, "impression, playback (a positive without impression) or sampled_negative"),
        ("played", B, "the member played the title within the horizon after label_time"),
        ("completed", B, "and completed it (a complete event or > 90 % watched) in that playback"),
        ("rated_high", B, "rated it >= 4 within the horizon"),
        ("features_date", DATE, "the daily feature snapshot joined: the day before label_date"),
        *((f.name, _feature_type(f), f.description) for f in features),
    )


TRAINING_EXAMPLES = _training_contract()
