"""What the learning stage reads from the lake: interactions, the catalog, members and the
point-in-time user features of the daily snapshots.

    data = load_lake_data(catalog, lake, settings, as_of=date(1998, 4, 22))

Interactions are the silver playbacks and ratings whose day is at most ``as_of`` (every rating
counts, so an imported rating is one even if its play were missing). The catalog is every title
of ``dim_titles`` (a title nobody played can still be recommended by its content), the members
every member of ``dim_members`` plus anyone with an interaction. User batch features of a row at
instant T are the ``features_user_daily`` snapshot of the day before T's day, the newest one
complete at T, exactly as the training-set builder joins them; a missing snapshot gives the
registry defaults. Real-time features other than the recent titles are left at their defaults
offline (docs/learning.md says why).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

import numpy as np
import numpy.typing as npt
from pyiceberg.catalog import Catalog

from recsys.config import LakeSettings
from recsys.lake import table_identifier
from recsys.models.vectorize import user_feature_names
from recsys_pipelines.contracts import (
    FEATURES_TITLE_DAILY,
    FEATURES_USER_DAILY,
    SILVER_PLAYBACK,
    SILVER_RATINGS,
)
from recsys_pipelines.engine import Engine
from recsys_pipelines.lakeio import read_members, read_titles
from recsys_pipelines.learning.interactions import Interactions
from recsys_pipelines.settings import PipelineSettings
from recsys_pipelines.tables import read_table

__all__ = ["LearningData", "SnapshotContext", "load_lake_data"]

_US = 1_000_000
_EPOCH = date(1970, 1, 1)
_SNAPSHOT_USER_COLUMNS = [c for c in FEATURES_USER_DAILY.columns[2:] if c in user_feature_names()]


@dataclass
class LearningData:
    """Everything training needs, independent of where it came from (lake or rating files)."""

    interactions: Interactions
    title_columns: dict[str, list[Any]]  # registry title features aligned with titles
    as_of: date
    countries: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    context: Any = None  # a UserContext; None = registry defaults
    lineage: dict[str, Any] = field(default_factory=dict)  # snapshot ids for the manifest


def _us(values: list[datetime]) -> npt.NDArray[np.int64]:
    return np.asarray([int(v.timestamp() * _US) for v in values], np.int64)


def _snapshot_id(catalog: Catalog, lake: LakeSettings, name: str) -> int | None:
    identifier = table_identifier(lake, name)
    if not catalog.table_exists(identifier):
        return None
    snapshot = catalog.load_table(identifier).current_snapshot()
    return snapshot.snapshot_id if snapshot is not None else None


def load_lake_data(
    catalog: Catalog,
    lake: LakeSettings,
    settings: PipelineSettings,
    as_of: date,
) -> LearningData:
    playback = read_table(catalog, lake, SILVER_PLAYBACK, None, as_of)
    ratings = read_table(catalog, lake, SILVER_RATINGS, None, as_of)
    titles = read_titles(catalog, lake)
    members = read_members(catalog, lake)
    users = playback.column("user_id").to_pylist() + ratings.column("user_id").to_pylist()
    title_ids = playback.column("title_id").to_pylist() + ratings.column("title_id").to_pylist()
    times = np.concatenate(
        [
            _us(playback.column("first_event_at").to_pylist()),
            _us(ratings.column("rated_at").to_pylist()),
        ]
    )
    rating = [0] * playback.num_rows + ratings.column("rating").to_pylist()
    completed = [bool(c) for c in playback.column("completed").to_pylist()] + [
        False
    ] * ratings.num_rows
    catalog_ids = titles.column("title_id").to_pylist()
    data = Interactions.build(
        users,
        title_ids,
        times,
        catalog_ids,
        ratings=rating,
        completed=completed,
        users=members.column("user_id").to_pylist(),
    )
    title_columns = _title_columns(catalog, lake, titles, data.titles, as_of)
    languages: dict[str, int] = {}
    for lang in titles.column("language").to_pylist():
        if lang:
            languages[lang] = languages.get(lang, 0) + 1
    lineage = {
        "as_of": as_of.isoformat(),
        "bronze_snapshot_id": _snapshot_id(catalog, lake, settings.bronze_table),
        "silver_snapshot_ids": {
            name: _snapshot_id(catalog, lake, name)
            for name in (SILVER_PLAYBACK.name, SILVER_RATINGS.name)
        },
        "features_user_daily_snapshot_id": _snapshot_id(catalog, lake, FEATURES_USER_DAILY.name),
        "interactions": len(data),
        "members": data.n_users,
        "titles": data.n_titles,
    }
    return LearningData(
        interactions=data,
        title_columns=title_columns,
        as_of=as_of,
        countries=sorted({c for c in members.column("country").to_pylist() if c}),
        languages=sorted(languages, key=lambda x: (-languages[x], x))[:20],
        context=SnapshotContext(catalog, lake, settings),
        lineage=lineage,
    )


def _title_columns(
    catalog: Catalog, lake: LakeSettings, titles: Any, order: tuple[str, ...], as_of: date
) -> dict[str, list[Any]]:
    """Registry title features of every catalog title: the static ones from dim_titles, the
    windowed ones from the newest snapshot up to ``as_of`` (defaults when there is none)."""
    position = {t: i for i, t in enumerate(order)}
    n = len(order)
    genres: list[Any] = [None] * n
    age: list[Any] = [None] * n
    for tid, g, released in zip(
        titles.column("title_id").to_pylist(),
        titles.column("genres").to_pylist(),
        titles.column("release_date").to_pylist(),
        strict=True,
    ):
        i = position[tid]
        genres[i] = list(g or [])
        age[i] = (as_of - released).days if released is not None else -1
    columns: dict[str, list[Any]] = {"title_genres": genres, "release_age_days": age}
    if catalog.table_exists(table_identifier(lake, FEATURES_TITLE_DAILY.name)):
        snap = read_table(catalog, lake, FEATURES_TITLE_DAILY, as_of - timedelta(days=7), as_of)
        if snap.num_rows:
            latest = max(snap.column("feature_date").to_pylist())
            popularity: list[Any] = [None] * n
            completion: list[Any] = [None] * n
            for row in snap.filter(_equal(snap, "feature_date", latest)).to_pylist():
                j = position.get(row["title_id"])
                if j is not None:
                    popularity[j] = row["title_popularity_30d"]
                    completion[j] = row["title_completion_rate_90d"]
            columns["title_popularity_30d"] = popularity
            columns["title_completion_rate_90d"] = completion
    return columns


def _equal(table: Any, column: str, value: Any) -> Any:
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    return pc.equal(table.column(column), value)


@dataclass
class SnapshotContext:
    """User batch features of (member, instant) rows from the daily snapshot of the day before
    the instant's day (registry defaults when the lake has none for that day)."""

    catalog: Catalog
    lake: LakeSettings
    settings: PipelineSettings

    def coverage(self, at_us: npt.NDArray[np.int64]) -> float:
        """The share of ``at_us`` whose day before has a snapshot partition."""
        identifier = table_identifier(self.lake, FEATURES_USER_DAILY.name)
        if at_us.shape[0] == 0 or not self.catalog.table_exists(identifier):
            return 0.0
        scan = self.catalog.load_table(identifier).scan(selected_fields=("feature_date",))
        snapshot_days = {
            (d - _EPOCH).days for d in set(scan.to_arrow().column("feature_date").to_pylist())
        }
        wanted = at_us // (86_400 * _US) - 1  # the day before each instant's, in epoch days
        return float(np.isin(wanted, np.fromiter(snapshot_days, np.int64)).mean())

    def columns(self, users: list[str], at_us: npt.NDArray[np.int64]) -> dict[str, list[Any]]:
        import pyarrow as pa

        if not users or not self.catalog.table_exists(
            table_identifier(self.lake, FEATURES_USER_DAILY.name)
        ):
            return {}
        days = [
            datetime.fromtimestamp(t / _US, UTC).date() - timedelta(days=1) for t in at_us.tolist()
        ]
        snap = read_table(self.catalog, self.lake, FEATURES_USER_DAILY, min(days), max(days))
        if snap.num_rows == 0:
            return {}
        rows = pa.table(
            {
                "i": pa.array(np.arange(len(users)), pa.int64()),
                "user_id": pa.array(users, pa.string()),
                "feature_date": pa.array(days, pa.date32()),
            }
        )
        select = ", ".join(f"s.{c}" for c in _SNAPSHOT_USER_COLUMNS)
        with Engine(self.settings) as engine:
            engine.register("rows", rows)
            engine.register("snap", snap)
            joined = engine.query(
                f"SELECT r.i, {select} FROM rows r LEFT JOIN snap s "
                "ON s.user_id = r.user_id AND s.feature_date = r.feature_date ORDER BY r.i"
            )
        return {c: joined.column(c).to_pylist() for c in _SNAPSHOT_USER_COLUMNS}


def end_of(day: date) -> int:
    """µs since the epoch at the end of ``day`` (UTC): the instant recommendations are made."""
    return int(datetime.combine(day + timedelta(days=1), dtime(), UTC).timestamp() * _US)
