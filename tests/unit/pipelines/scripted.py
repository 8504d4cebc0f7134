"""Scripted lakes for the pipeline tests: a few titles, members and hand-written bronze events.

Events go into a real bronze table through the bronze writer's own append path, titles and
members through the world generator's own dimension writer, so the pipelines read exactly what
production writes.

    lake = ScriptedLake.create(tmp_path)
    lake.titles(title("t1", runtime_min=70, genres=["drama"]))
    lake.events(play("u1", "t1", at("2026-11-20 20:00")), complete(...))
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa  # type: ignore[import-untyped]
from pyiceberg.catalog import Catalog

from recsys.config import LakeSettings
from recsys.lake import load_catalog
from recsys_bronze.append import append_by_day
from recsys_bronze.tables import EVENTS_ARROW, open_events_table
from recsys_datagen.dimensions import MEMBER_SCHEMA, TITLE_SCHEMA
from recsys_datagen.lake_tables import DIM_MEMBERS, DIM_TITLES, open_dim_table, replace_source_rows
from recsys_pipelines.settings import PipelineSettings

__all__ = [
    "ScriptedLake",
    "at",
    "event",
    "member",
    "title",
]


def at(text: str) -> datetime:
    """``"2026-11-20 20:00"`` (or with seconds) as a UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _us(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def event(
    kind: str,
    user: str,
    when: datetime,
    title: str | None = None,
    *,
    device: str | None = "tv",
    country: str | None = "US",
    event_id: str | None = None,
    **details: Any,
) -> dict[str, Any]:
    """One bronze row (without Kafka coordinates, which the lake assigns)."""
    return {
        # Deterministic, so two lakes built from the same script hold the same rows.
        "event_id": event_id
        or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}|{user}|{device}|{when}|{title}")),
        "event_type": kind,
        "user_id": user,
        "title_id": title,
        "device": device,
        "country": country,
        "occurred_at": _us(when),
        "received_at": _us(when),
        "app_version": None,
        "details_kind": kind if details or kind in {"play", "rate", "search"} else None,
        "details": orjson.dumps(details, option=orjson.OPT_SORT_KEYS).decode() if details else None,
    }


def title(
    title_id: str,
    *,
    runtime_min: int = 100,
    genres: Iterable[str] = ("drama",),
    release: date = date(2020, 1, 1),
    countries: Iterable[str] = ("US", "GB"),
    name: str | None = None,
    director: str | None = None,
    language: str | None = "en",
    popularity: float = 0.01,
    kind: str = "movie",
) -> dict[str, Any]:
    return {
        "title_id": title_id,
        "source": "synthetic",
        "name": name or title_id.upper(),
        "kind": kind,
        "genres": list(genres),
        "director": director,
        "language": language,
        "maturity_rating": "13+",
        "runtime_min": runtime_min,
        "seasons": None,
        "episodes": None,
        "release_date": release,
        "popularity": popularity,
        "available_countries": list(countries),
    }


def member(
    user_id: str, *, country: str = "US", plan: str = "standard", signup: date = date(2020, 1, 1)
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "source": "synthetic",
        "country": country,
        "devices": ["tv"],
        "plan_tier": plan,
        "languages": ["en"],
        "genre_preferences": None,
        "preferred_hours": None,
        "activity": None,
        "signup_date": signup,
    }


@dataclass
class ScriptedLake:
    lake: LakeSettings
    catalog: Catalog
    settings: PipelineSettings = field(default_factory=PipelineSettings)
    _offsets: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    def create(cls, root: Path) -> ScriptedLake:
        lake = LakeSettings(warehouse=root / "lake")
        return cls(lake, load_catalog(lake), PipelineSettings(engine_threads=1))

    def titles(self, *rows: dict[str, Any]) -> None:
        table = open_dim_table(self.catalog, self.lake, DIM_TITLES)
        replace_source_rows(table, pa.Table.from_pylist(list(rows), TITLE_SCHEMA), "synthetic")

    def members(self, *rows: dict[str, Any]) -> None:
        table = open_dim_table(self.catalog, self.lake, DIM_MEMBERS)
        replace_source_rows(table, pa.Table.from_pylist(list(rows), MEMBER_SCHEMA), "synthetic")

    def events(self, *rows: dict[str, Any]) -> None:
        """Append the rows to bronze as one micro-commit (one snapshot), in the given order."""
        table = open_events_table(self.catalog, self.lake, self.settings.bronze_table)
        placed = [
            {**row, "kafka_partition": 0, "kafka_offset": next(self._offsets), "ingested_at": 0}
            for row in rows
        ]
        append_by_day(table, placed, EVENTS_ARROW, {})

    def bronze_snapshots(self) -> int:
        table = open_events_table(self.catalog, self.lake, self.settings.bronze_table)
        return len(table.snapshots())
