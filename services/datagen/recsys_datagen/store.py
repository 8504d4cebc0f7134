"""Store dimension rows where later stages read them: Cassandra and the Iceberg lake.

The world generator and the importers both call :func:`store_dimensions`, so a title looks the
same whichever way it entered the platform. Either store can be left out (``None``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
from pyiceberg.catalog import Catalog

from recsys.clients.cassandra import CassandraClient
from recsys.config import LakeSettings
from recsys_datagen import catalog_store, lake_tables
from recsys_datagen.progress import NO_PROGRESS, ProgressSink

__all__ = ["CassandraTarget", "LakeTarget", "StoreReport", "store_dimensions"]


@dataclass(frozen=True, slots=True)
class CassandraTarget:
    client: CassandraClient
    keyspace: str
    concurrency: int = 32


@dataclass(frozen=True, slots=True)
class LakeTarget:
    catalog: Catalog
    settings: LakeSettings


@dataclass(slots=True)
class StoreReport:
    titles: int = 0
    members: int = 0
    cassandra_deleted: int = 0  # stale rows of the same source removed
    seconds: dict[str, float] = field(default_factory=dict)


def store_dimensions(
    titles: pa.Table,
    members: pa.Table,
    *,
    source: str,
    cassandra: CassandraTarget | None,
    lake: LakeTarget | None,
    seed: int | None = None,
    details: dict[str, Any] | None = None,
    progress: ProgressSink = NO_PROGRESS,
) -> StoreReport:
    """Replace ``source``'s titles and members in each given store with these rows."""
    report = StoreReport(titles=titles.num_rows, members=members.num_rows)
    if cassandra is not None:
        t0 = time.perf_counter()
        c, ks = cassandra.client, cassandra.keyspace
        catalog_store.ensure_catalog_tables(c, ks)
        for name, rows, key in (
            (catalog_store.TITLES, titles, "title_id"),
            (catalog_store.MEMBERS, members, "user_id"),
        ):
            catalog_store.write_rows(
                c, ks, name, rows, concurrency=cassandra.concurrency, progress=progress
            )
            report.cassandra_deleted += catalog_store.delete_stale_rows(
                c, ks, name, source, rows.column(key).to_pylist(), concurrency=cassandra.concurrency
            )
        catalog_store.record_dataset(
            c,
            ks,
            source=source,
            titles=titles.num_rows,
            members=members.num_rows,
            seed=seed,
            details=details or {},
        )
        report.seconds["cassandra"] = time.perf_counter() - t0
    if lake is not None:
        t0 = time.perf_counter()
        properties = {
            "recsys.titles": str(titles.num_rows),
            "recsys.members": str(members.num_rows),
        }
        if seed is not None:
            properties["recsys.seed"] = str(seed)
        for name, rows in ((lake_tables.DIM_TITLES, titles), (lake_tables.DIM_MEMBERS, members)):
            advance = progress.task(f"lake {name}", rows.num_rows)
            table = lake_tables.open_dim_table(lake.catalog, lake.settings, name)
            lake_tables.replace_source_rows(table, rows, source, properties)
            advance(rows.num_rows)
        report.seconds["lake"] = time.perf_counter() - t0
    return report
