"""Write a lake as the platform would, without its servers: ingest-API events (JSON dicts) into
bronze as the bronze writer stores them, and the catalog's dimension tables. Shared by the
learning tests and the pipelines and learning benchmarks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson

from recsys.config import Settings
from recsys.lake import load_catalog
from recsys_bronze.append import append_by_day
from recsys_bronze.tables import EVENTS_ARROW, open_events_table
from recsys_datagen.lake_tables import DIM_MEMBERS, DIM_TITLES, open_dim_table, replace_source_rows

__all__ = ["bronze_row", "write_bronze", "write_dims"]

_DETAILS = {
    "view": ("page",),
    "play": ("position_sec",),
    "pause": ("position_sec", "watched_sec"),
    "complete": ("position_sec", "watched_sec"),
    "skip": ("position_sec", "watched_sec"),
    "rate": ("rating",),
    "search": ("query",),
    "impression": ("title_ids", "row", "position", "request_id"),
}


def _us(value: Any) -> int:
    if isinstance(value, str):
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1_000_000)
    return int(value) * 1000  # epoch ms


def bronze_row(event: dict[str, Any], offset: int) -> dict[str, Any]:
    """An ingest-API event as the bronze writer stores it."""
    kind = event["event_type"]
    fields = {k: event[k] for k in _DETAILS[kind] if k in event}
    at = _us(event["occurred_at"])
    return {
        "event_id": event["event_id"],
        "event_type": kind,
        "user_id": event["user_id"],
        "title_id": event.get("title_id"),
        "device": event.get("device"),
        "country": event.get("country"),
        "occurred_at": at,
        "received_at": at,
        "app_version": event.get("app_version"),
        "details_kind": kind,
        "details": orjson.dumps(fields, option=orjson.OPT_SORT_KEYS).decode(),
        "kafka_partition": 0,
        "kafka_offset": offset,
        "ingested_at": at,
    }


def write_bronze(settings: Settings, events: Iterable[dict[str, Any]], batch: int = 10_000) -> int:
    """Append ``events`` to the bronze table in commits of ``batch`` rows; returns how many."""
    table = open_events_table(
        load_catalog(settings.lake), settings.lake, settings.pipelines.bronze_table
    )
    rows: list[dict[str, Any]] = []
    total = 0
    for event in events:
        rows.append(bronze_row(event, total))
        total += 1
        if len(rows) == batch:
            append_by_day(table, rows, EVENTS_ARROW, {})
            rows = []
    if rows:
        append_by_day(table, rows, EVENTS_ARROW, {})
    return total


def write_dims(settings: Settings, titles: Any, members: Any, source: str) -> None:
    """``dim_titles`` and ``dim_members`` rows of ``source``, as `recsys world generate` and
    `recsys import` store them."""
    catalog = load_catalog(settings.lake)
    replace_source_rows(open_dim_table(catalog, settings.lake, DIM_TITLES), titles, source)
    replace_source_rows(open_dim_table(catalog, settings.lake, DIM_MEMBERS), members, source)
