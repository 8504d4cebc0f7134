"""The two bronze tables: ``bronze_events`` (one row per Kafka record) and ``bronze_rejects``.

``bronze_events`` keeps every field of ``recsys.events.v1.Event``; the oneof ``details`` is kept as
a JSON string (plus the name of the case that was set) so that a new details message or field in
the event schema needs no table migration: the silver layer flattens it. Both tables carry the
Kafka coordinates of each row, which is what makes the writer's de-duplication on replay possible.
"""

from __future__ import annotations

import pyarrow as pa  # type: ignore[import-untyped]
from pyiceberg.catalog import Catalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform
from pyiceberg.types import (
    BinaryType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from recsys.config import LakeSettings
from recsys.lake import table_identifier

__all__ = [
    "EVENTS_ARROW",
    "EVENTS_SCHEMA",
    "EVENTS_SPEC",
    "REJECTS_ARROW",
    "REJECTS_SCHEMA",
    "REJECTS_SPEC",
    "TABLE_PROPERTIES",
    "open_events_table",
    "open_rejects_table",
]

EVENTS_SCHEMA = Schema(
    NestedField(1, "event_id", StringType(), required=True),
    NestedField(2, "event_type", StringType(), required=True, doc="play, view, ... (lower case)"),
    NestedField(3, "user_id", StringType(), required=True),
    NestedField(4, "title_id", StringType(), required=False, doc="null for search, impression"),
    NestedField(5, "device", StringType(), required=False),
    NestedField(6, "country", StringType(), required=False),
    NestedField(7, "occurred_at", TimestamptzType(), required=True, doc="event time"),
    NestedField(8, "received_at", TimestamptzType(), required=False),
    NestedField(9, "app_version", StringType(), required=False),
    NestedField(10, "details_kind", StringType(), required=False, doc="the details case set"),
    NestedField(11, "details", StringType(), required=False, doc="that case's fields as JSON"),
    NestedField(12, "kafka_partition", IntegerType(), required=True),
    NestedField(13, "kafka_offset", LongType(), required=True),
    NestedField(14, "ingested_at", TimestamptzType(), required=True, doc="read by the writer"),
)
EVENTS_SPEC = PartitionSpec(
    PartitionField(source_id=7, field_id=1000, transform=DayTransform(), name="occurred_at_day")
)

REJECTS_SCHEMA = Schema(
    NestedField(1, "kafka_topic", StringType(), required=True),
    NestedField(2, "kafka_partition", IntegerType(), required=True),
    NestedField(3, "kafka_offset", LongType(), required=True),
    NestedField(4, "kafka_timestamp", TimestamptzType(), required=False),
    NestedField(5, "kafka_key", BinaryType(), required=False),
    NestedField(6, "kafka_value", BinaryType(), required=False, doc="the record, byte for byte"),
    NestedField(7, "error", StringType(), required=True),
    NestedField(8, "rejected_at", TimestamptzType(), required=True),
)
REJECTS_SPEC = PartitionSpec(
    PartitionField(source_id=8, field_id=1000, transform=DayTransform(), name="rejected_at_day")
)

EVENTS_ARROW: pa.Schema = EVENTS_SCHEMA.as_arrow()
REJECTS_ARROW: pa.Schema = REJECTS_SCHEMA.as_arrow()


# pyiceberg retries a commit that lost a race by re-applying the same append on top of the winner.
# For the bronze tables that is wrong: the rows must be filtered again against the offsets the
# winner wrote, and the offsets recomputed, or a replayed record lands twice. The writer retries
# itself (see batch.py), so pyiceberg's own retry is switched off.
TABLE_PROPERTIES = {"commit.retry.num-retries": "0"}


def _open(
    catalog: Catalog, lake: LakeSettings, name: str, schema: Schema, spec: PartitionSpec
) -> Table:
    table = catalog.create_table_if_not_exists(
        table_identifier(lake, name),
        schema=schema,
        partition_spec=spec,
        properties=TABLE_PROPERTIES,
    )
    if any(table.properties.get(k) != v for k, v in TABLE_PROPERTIES.items()):
        # A table created by an older writer (or changed by hand): put the property back.
        with table.transaction() as tx:
            tx.set_properties(TABLE_PROPERTIES)
    return table


def open_events_table(catalog: Catalog, lake: LakeSettings, name: str) -> Table:
    """The events table, created partitioned by day(occurred_at) on first use."""
    return _open(catalog, lake, name, EVENTS_SCHEMA, EVENTS_SPEC)


def open_rejects_table(catalog: Catalog, lake: LakeSettings, name: str) -> Table:
    """The dead-letter table, created partitioned by day(rejected_at) on first use."""
    return _open(catalog, lake, name, REJECTS_SCHEMA, REJECTS_SPEC)
