"""Every feature of the platform, declared once (seed 004, "Step 4: Feature Engineering").

Real-time features come from the stream job and are served from Redis with a durable copy in
Cassandra; batch features come from the daily job over the lake and live in Cassandra. Read
them through :data:`FEATURES`; never re-declare a name, window or TTL elsewhere.
"""

from __future__ import annotations

from datetime import timedelta

from recsys.features.registry import (
    Dtype,
    Entity,
    FeatureDefinition,
    FeatureKind,
    FeatureRegistry,
    Store,
    WindowType,
)

__all__ = ["FEATURES", "GENRE_COUNT", "SESSION_GAP"]

# The catalog's genre vocabulary has 18 entries (seed 004: genre_affinity_vector[18]).
GENRE_COUNT = 18
# A new session starts after this much inactivity in event time.
SESSION_GAP = timedelta(minutes=30)

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

_ONLINE = (Store.REDIS, Store.CASSANDRA)
_OFFLINE = (Store.CASSANDRA,)


def _realtime(
    name: str,
    dtype: Dtype,
    window_type: WindowType,
    window: timedelta | None,
    ttl: timedelta,
    default: object,
    description: str,
    *,
    entity: Entity = Entity.USER,
    max_items: int | None = None,
) -> FeatureDefinition:
    return FeatureDefinition(
        name=name,
        entity=entity,
        kind=FeatureKind.REALTIME,
        dtype=dtype,
        window_type=window_type,
        window=window,
        ttl=ttl,
        stores=_ONLINE,
        default=default,
        description=description,
        max_items=max_items,
    )


def _batch(
    name: str,
    dtype: Dtype,
    window: timedelta | None,
    default: object,
    description: str,
    *,
    dim: int | None = None,
    max_items: int | None = None,
    entity: Entity = Entity.USER,
) -> FeatureDefinition:
    static = window is None
    return FeatureDefinition(
        name=name,
        entity=entity,
        kind=FeatureKind.BATCH,
        dtype=dtype,
        window_type=WindowType.STATIC if static else WindowType.LOOKBACK,
        window=window,
        # Seed 004: Cassandra TTL 24-48 h for daily features; profile attributes never expire.
        ttl=None if static else 2 * DAY,
        stores=_OFFLINE,
        default=default,
        description=description,
        dim=dim,
        max_items=max_items,
        refresh=DAY,
    )


FEATURES = FeatureRegistry(
    [
        # --- real-time: what the member is doing right now -------------------------------
        _realtime(
            "current_genre_last_30min",
            Dtype.STRING,
            WindowType.SLIDING,
            30 * MINUTE,
            30 * MINUTE,
            "",
            "Genre with the most watch time in the last 30 minutes; empty when none.",
        ),
        _realtime(
            "session_duration_sec",
            Dtype.INT64,
            WindowType.SESSION,
            SESSION_GAP,
            HOUR,
            0,
            "Seconds from the first to the latest event of the current session (30 min gap).",
        ),
        _realtime(
            "plays_abandoned_last_1hr",
            Dtype.INT64,
            WindowType.TUMBLING,
            HOUR,
            HOUR,
            0,
            "Plays stopped before 25% of the runtime in the current hour.",
        ),
        _realtime(
            "content_completion_rate_today",
            Dtype.FLOAT64,
            WindowType.TUMBLING,
            DAY,
            DAY,
            0.0,
            "Completions divided by plays started today (UTC day), 0.0 with no plays.",
        ),
        _realtime(
            "current_device_type",
            Dtype.STRING,
            WindowType.EVENT_FIELD,
            None,
            DAY,
            "",
            "Device of the member's latest event (tv, mobile, tablet, web, console).",
        ),
        _realtime(
            "search_terms_last_5min",
            Dtype.STRING_LIST,
            WindowType.SLIDING,
            5 * MINUTE,
            5 * MINUTE,
            (),
            "Search queries of the last 5 minutes, newest first.",
            max_items=20,
        ),
        _realtime(
            "recently_watched_title_ids",
            Dtype.STRING_LIST,
            WindowType.LAST_N,
            None,
            30 * DAY,
            (),
            "The last 200 titles the member played, newest first: the two-tower's sequence "
            "input (docs/learning.md) and the already-watched filter.",
            max_items=200,
        ),
        _realtime(
            "trending_titles_1h",
            Dtype.STRING_LIST,
            WindowType.SLIDING,
            HOUR,
            HOUR,
            (),
            "Most played titles in the country over the last hour, most played first.",
            entity=Entity.COUNTRY,
            max_items=500,
        ),
        _realtime(
            "trending_titles_24h",
            Dtype.STRING_LIST,
            WindowType.SLIDING,
            DAY,
            DAY,
            (),
            "Most played titles in the country over the last 24 hours, most played first.",
            entity=Entity.COUNTRY,
            max_items=500,
        ),
        # --- batch: long-term preferences, daily ------------------------------------------
        _batch(
            "genre_affinity_vector",
            Dtype.FLOAT_VECTOR,
            30 * DAY,
            (0.0,) * GENRE_COUNT,
            "Share of watch time per genre over 30 days, in catalog genre order (sums to 1).",
            dim=GENRE_COUNT,
        ),
        _batch(
            "content_completion_rate_p50",
            Dtype.FLOAT64,
            90 * DAY,
            0.0,
            "Median fraction of each title watched over 90 days.",
        ),
        _batch(
            "avg_session_duration_min",
            Dtype.FLOAT64,
            30 * DAY,
            0.0,
            "Mean session length in minutes over 30 days.",
        ),
        _batch(
            "preferred_time_of_day",
            Dtype.INT64,
            30 * DAY,
            -1,
            "Local hour (0-23) with the most watch time over 30 days; -1 when unknown.",
        ),
        _batch(
            "language_preferences",
            Dtype.STRING_LIST,
            90 * DAY,
            (),
            "Audio languages by watch time over 90 days, most watched first.",
            max_items=5,
        ),
        _batch(
            "country",
            Dtype.STRING,
            None,
            "",
            "Member's country, ISO 3166-1 alpha-2.",
        ),
        _batch(
            "subscription_tier",
            Dtype.STRING,
            None,
            "",
            "Plan tier (basic, standard, premium).",
        ),
        _batch("watch_hours_30d", Dtype.FLOAT64, 30 * DAY, 0.0, "Hours watched over 30 days."),
        _batch("watch_hours_90d", Dtype.FLOAT64, 90 * DAY, 0.0, "Hours watched over 90 days."),
        _batch("watch_hours_365d", Dtype.FLOAT64, 365 * DAY, 0.0, "Hours watched over 365 days."),
        _batch(
            "top_directors_30d",
            Dtype.STRING_LIST,
            30 * DAY,
            (),
            "Directors by watch time over 30 days, most watched first.",
            max_items=10,
        ),
        # --- batch: title features, daily (item tower, ranker, fallbacks) ----------------
        _batch(
            "title_genres",
            Dtype.STRING_LIST,
            None,
            (),
            "The title's genres, most defining first (recsys.catalog.GENRES names).",
            max_items=GENRE_COUNT,
            entity=Entity.TITLE,
        ),
        _batch(
            "release_age_days",
            Dtype.INT64,
            None,
            -1,
            "Days from the release date to the feature date; -1 when the date is unknown.",
            entity=Entity.TITLE,
        ),
        _batch(
            "title_popularity_30d",
            Dtype.FLOAT64,
            30 * DAY,
            0.0,
            "The title's share of all hours viewed over 30 days (sums to 1 over titles).",
            entity=Entity.TITLE,
        ),
        _batch(
            "title_completion_rate_90d",
            Dtype.FLOAT64,
            90 * DAY,
            0.0,
            "Viewers over 90 days who completed it (sessions merged) / viewers; 0.0 with none.",
            entity=Entity.TITLE,
        ),
        _batch(
            "available_countries",
            Dtype.STRING_LIST,
            None,
            (),
            "Countries (ISO 3166-1 alpha-2) where the title may be shown, sorted.",
            max_items=250,
            entity=Entity.TITLE,
        ),
    ]
)
