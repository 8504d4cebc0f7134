"""Reading and writing the pipelines' lake tables.

Every write replaces whole date partitions in **one** Iceberg commit (a delete and an append in
one transaction, one catalog pointer swap), with the job's bookkeeping in the snapshot summary.
A crash before that swap leaves the table as it was: the Parquet files already written are
orphans no snapshot references (``expire_snapshots``/orphan clean-up removes them), and the next
run recomputes the same partitions.

    table = open_table(catalog, lake, SILVER_PLAYBACK)
    replace_partitions(table, SILVER_PLAYBACK, rows, dates, {"recsys.silver.x": "42"})
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Mapping
from datetime import date
from typing import TYPE_CHECKING

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.table import Table

from recsys.config import LakeSettings
from recsys.lake import table_identifier
from recsys_pipelines.contracts import TableContract
from recsys_pipelines.errors import PipelineError

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

__all__ = [
    "conform",
    "date_range_filter",
    "load_existing",
    "open_table",
    "read_table",
    "replace_partitions",
    "summary_property",
]

# What to run to get each input table, for the one-line error when it is missing.
_HOW_TO_GET = {
    "bronze_events": "start the bronze writer (`recsys services up bronze`) and send events",
    "dim_titles": "run `recsys world generate` or `recsys import ...` first",
    "dim_members": "run `recsys world generate` or `recsys import ...` first",
    "features_user_daily": "run `recsys pipeline backfill FROM TO` (or `run daily`) first",
    "features_title_daily": "run `recsys pipeline backfill FROM TO` (or `run daily`) first",
}


def load_existing(catalog: Catalog, lake: LakeSettings, name: str) -> Table:
    """An input table, or a PipelineError naming it and what produces it."""
    try:
        return catalog.load_table(table_identifier(lake, name))
    except NoSuchTableError:
        hint = _HOW_TO_GET.get(name, "run `recsys pipeline run silver` (or `daily`) first")
        raise PipelineError(f"lake table {lake.namespace}.{name} does not exist: {hint}") from None


def open_table(catalog: Catalog, lake: LakeSettings, contract: TableContract) -> Table:
    """The contract's table, created on first use; columns added to the contract are added."""
    table = catalog.create_table_if_not_exists(
        table_identifier(lake, contract.name),
        schema=contract.schema,
        partition_spec=contract.spec,
        # We never want pyiceberg to re-apply a replace on top of a concurrent winner: the rows
        # were computed from what the loser read. The caller re-runs instead.
        properties={"commit.retry.num-retries": "0"},
    )
    if set(contract.columns) - {f.name for f in table.schema().fields}:
        with table.update_schema() as update:
            update.union_by_name(contract.schema)
    return table


def conform(rows: pa.Table, contract: TableContract) -> pa.Table:
    """``rows`` with exactly the contract's columns, in order, cast to its types."""
    missing = [c for c in contract.columns if c not in rows.column_names]
    if missing:
        raise ValueError(f"{contract.name}: the transform did not produce {missing}")
    return rows.select(contract.columns).cast(contract.arrow)


def replace_partitions(
    table: Table,
    contract: TableContract,
    rows: pa.Table,
    dates: Collection[date],
    properties: Mapping[str, str],
) -> None:
    """Make ``rows`` the only rows of the ``dates`` partitions, in one commit with ``properties``.

    Every row must fall in ``dates``; with no dates the commit only records ``properties``.
    """
    rows = conform(rows, contract)
    column = contract.partition_column
    if rows.num_rows:
        outside = set(rows.column(column).unique().to_pylist()) - set(dates)
        if outside:
            raise ValueError(f"{contract.name}: rows dated {sorted(outside)} outside {dates}")
    # Row filters in pyiceberg's SQL-like syntax; dates render as ISO literals, nothing else.
    where = (
        f"{column} IN ({', '.join(repr(d.isoformat()) for d in sorted(dates))})"
        if dates
        else f"{column} < '0001-01-02' AND {column} > '9999-12-30'"  # matches no row
    )
    with warnings.catch_warnings():
        # Replacing a partition that does not exist yet deletes nothing; pyiceberg warns.
        warnings.filterwarnings("ignore", message="Delete operation did not match any records")
        try:
            with table.transaction() as tx:
                tx.overwrite(rows, overwrite_filter=where, snapshot_properties=dict(properties))
        except CommitFailedException:
            # Another run committed to the table since this one read it (two runs at once):
            # nothing of this one landed, and running it again is correct.
            raise PipelineError(
                f"{contract.name} was changed by another run at the same time; nothing was "
                "written by this one: run it again"
            ) from None


def date_range_filter(column: str, first: date | None, last: date | None) -> str:
    """``first <= column <= last`` (either end open when None), for partition pruning."""
    terms = []
    if first is not None:
        terms.append(f"{column} >= '{first.isoformat()}'")
    if last is not None:
        terms.append(f"{column} <= '{last.isoformat()}'")
    return " AND ".join(terms) or "True"


def read_table(
    catalog: Catalog,
    lake: LakeSettings,
    contract: TableContract,
    first: date | None = None,
    last: date | None = None,
) -> pa.Table:
    """The contract's rows with ``first <= partition date <= last``; a PipelineError if the
    table does not exist yet."""
    table = load_existing(catalog, lake, contract.name)
    scan = table.scan(row_filter=date_range_filter(contract.partition_column, first, last))
    return conform(scan.to_arrow(), contract)


def summary_property(table: Table, key: str) -> str | None:
    """``key`` from the newest snapshot of the current branch that carries it, else None."""
    snapshot = table.current_snapshot()
    while snapshot is not None:
        summary = snapshot.summary
        if summary is not None and key in summary.additional_properties:
            return summary.additional_properties[key]
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return None
