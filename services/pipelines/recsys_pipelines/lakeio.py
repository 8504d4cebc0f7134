"""Reading the input tables the pipelines do not own: bronze events and the two dimensions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pyiceberg.catalog import Catalog

from recsys.config import LakeSettings
from recsys_pipelines.tables import load_existing

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

__all__ = ["BRONZE_COLUMNS", "read_bronze", "read_members", "read_titles", "title_names"]

BRONZE_COLUMNS = (
    "event_id",
    "event_type",
    "user_id",
    "title_id",
    "device",
    "country",
    "occurred_at",
    "details",
    "kafka_partition",
    "kafka_offset",
)
_TITLE_COLUMNS = (
    "title_id",
    "source",
    "name",
    "kind",
    "genres",
    "director",
    "language",
    "runtime_min",
    "release_date",
    "popularity",
    "available_countries",
)
_MEMBER_COLUMNS = ("user_id", "country", "plan_tier", "languages", "signup_date")


def read_bronze(
    catalog: Catalog, lake: LakeSettings, table_name: str, start: datetime, end: datetime
) -> pa.Table:
    """Bronze events with ``start <= occurred_at < end`` (partition-pruned by day)."""
    table = load_existing(catalog, lake, table_name)
    where = (
        f"occurred_at >= '{start.astimezone(UTC).isoformat()}' "
        f"AND occurred_at < '{end.astimezone(UTC).isoformat()}'"
    )
    return table.scan(row_filter=where, selected_fields=BRONZE_COLUMNS).to_arrow()


def read_titles(catalog: Catalog, lake: LakeSettings) -> pa.Table:
    """Every title of every source (title ids are unique across sources)."""
    table = load_existing(catalog, lake, "dim_titles")
    return table.scan(selected_fields=_TITLE_COLUMNS).to_arrow()


def title_names(catalog: Catalog, lake: LakeSettings) -> dict[str, str]:
    """Every title's display name, by id."""
    table = load_existing(catalog, lake, "dim_titles")
    rows = table.scan(selected_fields=("title_id", "name")).to_arrow()
    return dict(
        zip(rows.column("title_id").to_pylist(), rows.column("name").to_pylist(), strict=True)
    )


def read_members(catalog: Catalog, lake: LakeSettings) -> pa.Table:
    table = load_existing(catalog, lake, "dim_members")
    return table.scan(selected_fields=_MEMBER_COLUMNS).to_arrow()
