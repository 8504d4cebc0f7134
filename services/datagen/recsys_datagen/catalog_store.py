"""Titles and members in Cassandra (tables of migration 0002), written and read in bulk.

Writes are prepared INSERTs sent as small UNLOGGED batches of rows owned by the same replica,
many batches in flight (``execute_concurrent``). Per-request overhead in the driver, not
Cassandra, is what limits a bulk load from Python: one request per row ran at ~2.4k rows/s here,
batches of ~10 rows at ~9.7k rows/s. Batches stay under Cassandra's default warning thresholds
(10 partitions, 5 KiB), and grouping by replica means the coordinator applies them locally.

A writer owns the rows of its ``source``: after writing it deletes that source's rows it did not
write, which makes regenerating a smaller world (or re-importing a file) a replacement, never a
mix.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType, PreparedStatement, SimpleStatement

from recsys.clients.cassandra import CassandraClient
from recsys_datagen.dimensions import MEMBER_SCHEMA, TITLE_SCHEMA, conform
from recsys_datagen.progress import NO_PROGRESS, ProgressSink

__all__ = [
    "CatalogTablesMissing",
    "DatasetRecord",
    "delete_stale_rows",
    "ensure_catalog_tables",
    "read_dataset",
    "read_members",
    "read_titles",
    "record_dataset",
    "write_rows",
]

TITLES = "titles"
MEMBERS = "members"
DATASETS = "datasets"
_KEYS = {TITLES: "title_id", MEMBERS: "user_id"}
_SCHEMAS = {TITLES: TITLE_SCHEMA, MEMBERS: MEMBER_SCHEMA}
_CHUNK = 5_000  # rows per execute_concurrent call: the unit of progress and of memory held
_PAGE = 5_000  # rows per page when scanning a table
# Cassandra warns above 10 partitions (unlogged_batch_across_partitions_warn_threshold) and
# 5 KiB (batch_size_warn_threshold) per batch; stay below both.
_BATCH_ROWS = 10
_BATCH_BYTES = 4_096
_CELL_OVERHEAD = (
    24  # bytes Cassandra adds per cell to a mutation, roughly (measured: ~450 B/member)
)


class CatalogTablesMissing(RuntimeError):
    """The keyspace or the catalog tables do not exist: migrations have not been applied."""


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    source: str
    titles: int
    members: int
    seed: int | None
    details: dict[str, Any]
    written_at: datetime


def ensure_catalog_tables(client: CassandraClient, keyspace: str) -> None:
    """Fail with the command to run if migration 0002 has not been applied to ``keyspace``."""
    client.cluster.refresh_schema_metadata()
    meta = client.cluster.metadata.keyspaces.get(keyspace)
    missing = [t for t in (TITLES, MEMBERS, DATASETS) if meta is None or t not in meta.tables]
    if missing:
        raise CatalogTablesMissing(
            f"Cassandra keyspace {keyspace!r} has no table(s) {', '.join(missing)}: "
            "run `recsys infra migrate` first"
        )


def write_rows(
    client: CassandraClient,
    keyspace: str,
    table_name: str,
    rows: pa.Table,
    *,
    concurrency: int = 32,
    progress: ProgressSink = NO_PROGRESS,
) -> int:
    """Upsert every row of ``rows`` (TITLE_SCHEMA or MEMBER_SCHEMA) into ``keyspace.table_name``."""
    schema = _SCHEMAS[table_name]
    rows = conform(rows, schema)
    names = schema.names
    statement = client.prepare(
        f"INSERT INTO {keyspace}.{table_name} ({', '.join(names)}) "
        f"VALUES ({', '.join('?' * len(names))})"
    )
    advance = progress.task(f"cassandra {table_name}", rows.num_rows)
    written = 0
    for start in range(0, rows.num_rows, _CHUNK):
        chunk = rows.slice(start, _CHUNK)
        params = list(zip(*(chunk.column(n).to_pylist() for n in names), strict=True))
        batches = _replica_batches(client, keyspace, statement, params)
        execute_concurrent(
            client.session,
            [(batch, ()) for batch in batches],
            concurrency=concurrency,
            raise_on_first_error=True,
        )
        written += len(params)
        advance(len(params))
    return written


def _replica_batches(
    client: CassandraClient,
    keyspace: str,
    statement: PreparedStatement,
    rows: Sequence[tuple[Any, ...]],
) -> list[BatchStatement]:
    """Rows grouped by the replica that owns them (first column is the partition key), cut into
    batches below the warning thresholds."""
    metadata = client.cluster.metadata
    groups: dict[object, list[tuple[Any, ...]]] = {}
    for row in rows:
        replicas = metadata.get_replicas(keyspace, str(row[0]).encode())
        groups.setdefault(replicas[0] if replicas else None, []).append(row)
    batches: list[BatchStatement] = []
    for group in groups.values():
        batch, size = BatchStatement(batch_type=BatchType.UNLOGGED), 0
        for row in group:
            row_bytes = _estimated_bytes(row)
            if len(batch) and (len(batch) >= _BATCH_ROWS or size + row_bytes > _BATCH_BYTES):
                batches.append(batch)
                batch, size = BatchStatement(batch_type=BatchType.UNLOGGED), 0
            batch.add(statement, row)
            size += row_bytes
        if len(batch):
            batches.append(batch)
    return batches


def _estimated_bytes(row: Sequence[Any]) -> int:
    def size(value: Any) -> int:
        if value is None:
            return 0
        if isinstance(value, str):
            return len(value.encode())
        if isinstance(value, list | tuple | set | frozenset):
            return 4 + sum(4 + size(v) for v in value)
        return 8

    return sum(_CELL_OVERHEAD + size(v) for v in row)


def delete_stale_rows(
    client: CassandraClient,
    keyspace: str,
    table_name: str,
    source: str,
    keep: Iterable[str],
    *,
    concurrency: int = 32,
) -> int:
    """Delete the rows of ``source`` whose id is not in ``keep``; returns how many went."""
    key = _KEYS[table_name]
    kept = set(keep)
    scan = SimpleStatement(f"SELECT {key}, source FROM {keyspace}.{table_name}", fetch_size=_PAGE)
    stale = [
        (row[key],)
        for row in client.session.execute(scan)
        if row["source"] == source and row[key] not in kept
    ]
    if stale:
        statement = client.prepare(f"DELETE FROM {keyspace}.{table_name} WHERE {key} = ?")
        execute_concurrent(
            client.session,
            [(batch, ()) for batch in _replica_batches(client, keyspace, statement, stale)],
            concurrency=concurrency,
            raise_on_first_error=True,
        )
    return len(stale)


def record_dataset(
    client: CassandraClient,
    keyspace: str,
    *,
    source: str,
    titles: int,
    members: int,
    seed: int | None,
    details: dict[str, Any],
) -> None:
    client.execute_sync(
        f"INSERT INTO {keyspace}.{DATASETS} (source, titles, members, seed, details, written_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (source, titles, members, seed, json.dumps(details, sort_keys=True), datetime.now(UTC)),
    )


def read_dataset(client: CassandraClient, keyspace: str, source: str) -> DatasetRecord | None:
    rows = client.execute_sync(
        f"SELECT source, titles, members, seed, details, written_at FROM {keyspace}.{DATASETS}"
        " WHERE source = ?",
        (source,),
    )
    if not rows:
        return None
    row = rows[0]
    return DatasetRecord(
        source=row["source"],
        titles=row["titles"] or 0,
        members=row["members"] or 0,
        seed=row["seed"],
        details=json.loads(row["details"] or "{}"),
        written_at=row["written_at"].replace(tzinfo=UTC),
    )


def read_titles(client: CassandraClient, keyspace: str, source: str | None = None) -> pa.Table:
    return _read(client, keyspace, TITLES, source)


def read_members(client: CassandraClient, keyspace: str, source: str | None = None) -> pa.Table:
    return _read(client, keyspace, MEMBERS, source)


def _read(client: CassandraClient, keyspace: str, table_name: str, source: str | None) -> pa.Table:
    """A full scan (paged), filtered by source, sorted by id; fine for dimension-sized tables."""
    schema = _SCHEMAS[table_name]
    key = _KEYS[table_name]
    scan = SimpleStatement(
        f"SELECT {', '.join(schema.names)} FROM {keyspace}.{table_name}", fetch_size=_PAGE
    )
    rows = [
        {name: _from_cql(row[name]) for name in schema.names}
        for row in client.session.execute(scan)
        if source is None or row["source"] == source
    ]
    rows.sort(key=lambda r: str(r[key]))
    return pa.Table.from_pylist(rows, schema=schema)


def _from_cql(value: Any) -> Any:
    """Driver types back to plain Python: ``cassandra.util.Date`` to date, sets to sorted lists."""
    if value is None or isinstance(value, str | int | float | date):
        return value
    if hasattr(value, "date") and callable(value.date):  # cassandra.util.Date
        return value.date()
    if isinstance(value, Sequence):
        return list(value)
    return sorted(value)  # SortedSet
