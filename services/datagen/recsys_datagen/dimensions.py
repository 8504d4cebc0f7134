"""The two dimension records, titles and members, as Arrow schemas.

One definition serves every writer and reader: the world generator and the importers build
tables with these schemas, the Cassandra store writes their columns to ``titles``/``members``
(migration 0002) and the lake stores them as ``dim_titles``/``dim_members``. Columns that only the
synthetic world knows (a member's latent tastes) are nullable; imported rows leave them null.
"""

from __future__ import annotations

from typing import Final, Literal

import pyarrow as pa  # type: ignore[import-untyped]

__all__ = [
    "MEMBER_SCHEMA",
    "SOURCES",
    "SYNTHETIC",
    "TITLE_SCHEMA",
    "Source",
    "conform",
]

Source = Literal["synthetic", "movielens", "movietweetings"]
SYNTHETIC: Final = "synthetic"
SOURCES: tuple[Source, ...] = ("synthetic", "movielens", "movietweetings")


def _required(name: str, type_: pa.DataType) -> pa.Field:
    return pa.field(name, type_, nullable=False)


TITLE_SCHEMA = pa.schema(
    [
        _required("title_id", pa.string()),
        _required("source", pa.string()),
        _required("name", pa.string()),
        _required("kind", pa.string()),  # movie | series
        _required("genres", pa.list_(pa.string())),
        pa.field("director", pa.string()),
        pa.field("language", pa.string()),
        pa.field("maturity_rating", pa.string()),
        _required("runtime_min", pa.int32()),
        pa.field("seasons", pa.int32()),
        pa.field("episodes", pa.int32()),
        pa.field("release_date", pa.date32()),
        _required("popularity", pa.float64()),
        _required("available_countries", pa.list_(pa.string())),
    ]
)

MEMBER_SCHEMA = pa.schema(
    [
        _required("user_id", pa.string()),
        _required("source", pa.string()),
        _required("country", pa.string()),
        _required("devices", pa.list_(pa.string())),
        _required("plan_tier", pa.string()),
        _required("languages", pa.list_(pa.string())),
        pa.field("genre_preferences", pa.list_(pa.float32())),
        pa.field("preferred_hours", pa.list_(pa.int32())),
        pa.field("activity", pa.float64()),
        pa.field("signup_date", pa.date32()),
    ]
)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns and types, or a ValueError naming the gap.

    Readers get tables back from Iceberg and Cassandra with the same data but looser metadata
    (nullability, list field names); casting to the one schema makes them compare equal.
    """
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise ValueError(f"table lacks columns {missing}")
    return table.select(schema.names).cast(schema)
