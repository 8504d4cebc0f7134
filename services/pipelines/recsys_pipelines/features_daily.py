"""Silver -> the daily batch features: every registry batch feature for one feature date.

    users, titles = compute_features(catalog, lake, settings, date(2026, 11, 28))

Values use the events up to the end of the feature date (UTC), over each feature's registry
window ending that day (30 days = the feature date and the 29 before it). Names, windows, list
bounds and defaults all come from :data:`recsys.features.FEATURES`; nothing is re-declared here.
A member gets a row when they have a playback in the longest window (365 days) or a session in the
30-day window; their static attributes come from dim_members (an imported member that is not
there gets the country of their latest playback).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from pyiceberg.catalog import Catalog

from recsys.catalog import GENRES
from recsys.config import LakeSettings
from recsys.features import FEATURES, Entity, FeatureDefinition, FeatureKind
from recsys_pipelines.contracts import (
    FEATURES_TITLE_DAILY,
    FEATURES_USER_DAILY,
    SILVER_PLAYBACK,
    SILVER_SESSIONS,
)
from recsys_pipelines.engine import Engine, Raw
from recsys_pipelines.lakeio import read_members, read_titles
from recsys_pipelines.settings import PipelineSettings
from recsys_pipelines.tables import conform, read_table

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

__all__ = [
    "TITLE_FEATURES",
    "USER_FEATURES",
    "compute_features",
    "fill_registry_defaults",
    "utc_offsets",
    "window_start",
]

USER_FEATURES: list[FeatureDefinition] = FEATURES.select(entity=Entity.USER, kind=FeatureKind.BATCH)
TITLE_FEATURES: list[FeatureDefinition] = FEATURES.select(
    entity=Entity.TITLE, kind=FeatureKind.BATCH
)


def window_start(name: str, feature_date: date) -> date:
    """First day of the feature's lookback window that ends on ``feature_date`` (inclusive)."""
    window = FEATURES[name].window
    if window is None:
        raise ValueError(f"{name} is static: it has no window")
    return feature_date - timedelta(days=window.days - 1)


def utc_offsets() -> pa.Table:
    """Country -> UTC offset in minutes, for local hours (standard time, as the world uses)."""
    import pyarrow as pa

    # The synthetic world's market table is the one place that knows each country's clock.
    from recsys.markets import MARKETS

    return pa.table(
        {
            "country": [m.country for m in MARKETS],
            "offset_min": pa.array([m.utc_offset_min for m in MARKETS], pa.int64()),
        }
    )


def _genre_vector_sql() -> Raw:
    # One share per genre, in the registry's vector order (recsys.catalog.GENRES).
    shares = ", ".join(f"COALESCE(SUM(s) FILTER (WHERE genre = '{g}'), 0) / SUM(s)" for g in GENRES)
    return Raw(f"[{shares}]")


def _titles_with_primary_genre(titles: pa.Table) -> pa.Table:
    import pyarrow as pa

    # Engines index lists differently (Spark 0-based, DuckDB 1-based), so it is done here once.
    # An imported title whose genres all mapped to nothing has none: null.
    primary = [g[0] if g else None for g in titles.column("genres").to_pylist()]
    return titles.append_column("primary_genre", pa.array(primary, pa.string()))


def fill_registry_defaults(rows: pa.Table) -> pa.Table:
    """Null values of registry-named columns (no data in the window) become the default."""
    import pyarrow as pa
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    for definition in FEATURES.values():
        name = definition.name
        if name not in rows.column_names:
            continue
        column = rows.column(name)
        if column.null_count == 0:
            continue
        default: Any = definition.default
        if isinstance(default, tuple):
            default = list(default)
        filled = pc.fill_null(column, pa.scalar(default, column.type))
        rows = rows.set_column(rows.schema.get_field_index(name), name, filled)
    return rows


def compute_features(
    catalog: Catalog, lake: LakeSettings, settings: PipelineSettings, feature_date: date
) -> tuple[pa.Table, pa.Table]:
    """(user rows, title rows) for ``feature_date``, in the snapshot tables' layouts."""
    first_365 = window_start("watch_hours_365d", feature_date)
    first_90 = window_start("watch_hours_90d", feature_date)
    first_30 = window_start("watch_hours_30d", feature_date)
    playback = read_table(catalog, lake, SILVER_PLAYBACK, first_365, feature_date)
    sessions = read_table(catalog, lake, SILVER_SESSIONS, first_30, feature_date)
    titles = _titles_with_primary_genre(read_titles(catalog, lake))
    with Engine(settings) as engine:
        engine.register("playback", playback)
        engine.register("sessions", sessions)
        engine.register("titles", titles)
        engine.register("members", read_members(catalog, lake))
        engine.register("utc_offsets", utc_offsets())
        users = engine.run(
            "features_user",
            feature_date=feature_date,
            first_365=first_365,
            first_90=first_90,
            first_30=first_30,
            genre_vector=_genre_vector_sql(),
            max_languages=FEATURES["language_preferences"].max_items or 5,
            max_directors=FEATURES["top_directors_30d"].max_items or 10,
        )
        titles_out = engine.run(
            "features_title",
            feature_date=feature_date,
            first_90=window_start("title_completion_rate_90d", feature_date),
            first_30=window_start("title_popularity_30d", feature_date),
        )
    return (
        fill_registry_defaults(conform(users, FEATURES_USER_DAILY)).sort_by("user_id"),
        fill_registry_defaults(conform(titles_out, FEATURES_TITLE_DAILY)).sort_by("title_id"),
    )
