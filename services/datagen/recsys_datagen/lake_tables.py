"""The dimension tables in the Iceberg lake: ``dim_titles`` and ``dim_members``.

Both are partitioned by ``source`` (identity), so replacing one source's rows is an Iceberg
overwrite whose delete drops whole partitions: regenerating the world or re-importing a file
replaces rows instead of appending duplicates, and leaves the other sources alone. Each write is
one snapshot carrying ``recsys.*`` properties (source, seed, counts) for lineage.
"""

from __future__ import annotations

import warnings

import pyarrow as pa  # type: ignore[import-untyped]
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table

from recsys.config import LakeSettings
from recsys.lake import table_identifier
from recsys_datagen.dimensions import MEMBER_SCHEMA, TITLE_SCHEMA, conform

__all__ = ["DIM_MEMBERS", "DIM_TITLES", "open_dim_table", "read_dim", "replace_source_rows"]

DIM_TITLES = "dim_titles"
DIM_MEMBERS = "dim_members"
_SCHEMAS = {DIM_TITLES: TITLE_SCHEMA, DIM_MEMBERS: MEMBER_SCHEMA}


def open_dim_table(catalog: Catalog, settings: LakeSettings, name: str) -> Table:
    """The table, created (partitioned by source) on first use; new schema columns are added."""
    schema = _SCHEMAS[name]
    table = catalog.create_table_if_not_exists(table_identifier(settings, name), schema=schema)
    if table.spec().is_unpartitioned():
        with table.update_spec() as spec:
            spec.add_identity("source")
    if set(schema.names) - {f.name for f in table.schema().fields}:
        with table.update_schema() as update:
            update.union_by_name(schema)
    return table


def replace_source_rows(
    table: Table, rows: pa.Table, source: str, properties: dict[str, str] | None = None
) -> None:
    """Make ``rows`` the table's only rows of ``source``, atomically (one snapshot)."""
    schema = _SCHEMAS[table.name()[-1]]
    rows = conform(rows, schema)
    if rows.num_rows and set(rows.column("source").unique().to_pylist()) != {source}:
        raise ValueError(f"rows of another source than {source!r} in a {source} write")
    with warnings.catch_warnings():
        # The first write of a source deletes nothing; pyiceberg warns about that, needlessly.
        warnings.filterwarnings("ignore", message="Delete operation did not match any records")
        table.overwrite(
            rows,
            overwrite_filter=_source_is(source),
            snapshot_properties={"recsys.source": source, **(properties or {})},
        )


def read_dim(
    catalog: Catalog, settings: LakeSettings, name: str, source: str | None = None
) -> pa.Table | None:
    """The table's rows (of one source if given) sorted by id, or None if it does not exist."""
    try:
        table = catalog.load_table(table_identifier(settings, name))
    except NoSuchTableError:
        return None
    scan = table.scan(row_filter=_source_is(source)) if source else table.scan()
    rows = conform(scan.to_arrow(), _SCHEMAS[name])
    return rows.sort_by(rows.schema.names[0])


def _source_is(source: str) -> str:
    """An Iceberg row filter in pyiceberg's SQL-like syntax (literal quotes doubled)."""
    return "source = '{}'".format(source.replace("'", "''"))
