"""Append rows to a table partitioned by ``day(<timestamp column>)``, computing the day ourselves.

pyiceberg 0.12 computes non-identity partition transforms (day, hour, bucket) on Arrow data with
the optional ``pyiceberg-core`` extension, which this project does not install; ``Table.append``
on a ``day(occurred_at)`` table therefore fails. The transform itself is trivial (floor of
microseconds / one day), so we group the rows by day in Python and hand pyiceberg's own Parquet
writer one task per day with its partition key, then commit the files in one fast-append snapshot.
The table keeps a real ``day(occurred_at)`` spec, so readers prune on ``occurred_at`` as usual.
When ``pyiceberg[pyiceberg-core]`` is installed this module can shrink to ``table.append``.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.io.pyarrow import write_file
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
from pyiceberg.table import Table, WriteTask
from pyiceberg.transforms import DayTransform

__all__ = ["DAY_US", "append_by_day"]

DAY_US = 86_400 * 1_000_000


def append_by_day(
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    schema: pa.Schema,
    properties: Mapping[str, str],
) -> None:
    """One snapshot holding ``rows`` (one Parquet file per day) and ``properties`` in its summary.

    ``rows`` have the table's columns, timestamps as integer microseconds. With no rows the
    snapshot is empty but still made: its summary is what moves the offsets forward.
    """
    metadata = table.metadata
    spec = metadata.spec()
    if len(spec.fields) != 1 or not isinstance(spec.fields[0].transform, DayTransform):
        raise ValueError(f"{table.name()} is not partitioned by one day() field: {spec}")
    field = spec.fields[0]
    iceberg_schema = metadata.schema()
    column = iceberg_schema.find_column_name(field.source_id)
    assert column is not None  # the spec was validated against this schema at creation

    by_day: dict[int, list[Mapping[str, Any]]] = {}
    for row in rows:
        # Python's // floors, so events before 1970 land on the right (negative) day too.
        by_day.setdefault(row[column] // DAY_US, []).append(row)

    write_uuid, counter = uuid.uuid4(), itertools.count()
    tasks = (
        WriteTask(
            write_uuid=write_uuid,
            task_id=next(counter),
            schema=iceberg_schema,
            record_batches=pa.Table.from_pylist(day_rows, schema=schema).to_batches(),
            partition_key=PartitionKey(
                field_values=[PartitionFieldValue(field=field, value=day)],
                partition_spec=spec,
                schema=iceberg_schema,
            ),
        )
        for day, day_rows in sorted(by_day.items())
    )
    data_files = list(write_file(io=table.io, table_metadata=metadata, tasks=tasks))
    try:
        with (
            table.transaction() as tx,
            tx.update_snapshot(snapshot_properties=dict(properties)).fast_append() as append,
        ):
            for data_file in data_files:
                append.append_data_file(data_file)
    except CommitFailedException:
        # The commit surely did not land, so nothing references these files; the caller retries
        # with freshly filtered rows, which go to new files.
        for data_file in data_files:
            table.io.delete(data_file.file_path)
        raise
