"""Bronze -> silver: incremental, idempotent, one atomic commit per table and chunk of days.

Each silver table records in its snapshot summary the newest bronze snapshot it has processed
(``recsys.silver.bronze_snapshot_id``). A run reads the bronze snapshots after that one, takes the
event days their files hold (plus the day before each: a session can start before midnight and
go on after it), and recomputes exactly those days from bronze, replacing the table's partitions
of those days. So:

- a second run with no new bronze snapshot finds nothing to do and commits nothing;
- a run after new events recomputes only their days (late events included: their day is
  recomputed whenever it is);
- a crash leaves no partial commit: each table's replace of a chunk of days is one Iceberg commit,
  and only the last chunk's commit carries the new bronze snapshot id, so a run that dies midway
  starts over from the old one and recomputes the same days (same rows: the transforms are pure
  functions of bronze). Tables are committed one after the other; one that committed before the
  crash is simply up to date on the next run.

    report = run_silver(catalog, lake, settings, progress=print)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

from pyiceberg.catalog import Catalog

from recsys.config import LakeSettings
from recsys.features.definitions import SESSION_GAP
from recsys.lake import table_identifier
from recsys_pipelines.bronze_changes import BronzeChanges, changes_since
from recsys_pipelines.contracts import SILVER_PLAYBACK, SILVER_RATINGS, SILVER_TABLES, TableContract
from recsys_pipelines.engine import Engine, render, sql_text
from recsys_pipelines.lakeio import read_bronze, read_titles
from recsys_pipelines.settings import PipelineSettings
from recsys_pipelines.tables import load_existing, open_table, replace_partitions, summary_property

__all__ = ["WATERMARK", "SilverReport", "TableRun", "latest_event_day", "run_silver"]

WATERMARK = "recsys.silver.bronze_snapshot_id"
# Events read around the days being recomputed, so a session that crosses the edge of the read
# window is seen whole. A session with no 30 min pause for longer than this would be cut there.
READ_MARGIN = timedelta(hours=12)
# A chunk (one commit per table) holds at most this many days, and days whose bronze rows add up
# to at most PipelineSettings.silver_chunk_rows (a single bigger day is a chunk of its own): this
# bounds the memory of a full (re)build while keeping commits few on sparse, multi-year data.
CHUNK_DAYS = 62
GAP_US = int(SESSION_GAP.total_seconds() * 1_000_000)


@dataclass
class TableRun:
    table: str
    snapshots: int = 0  # bronze snapshots it had not processed
    days: list[date] = field(default_factory=list)
    rows: int = 0
    committed: bool = False


@dataclass
class SilverReport:
    bronze_head: int | None
    tables: list[TableRun]
    seconds: float

    @property
    def changed(self) -> bool:
        return any(t.committed for t in self.tables)


def _watermark(value: str | None) -> int | None:
    return int(value) if value is not None else None


def _days_to_recompute(changes: BronzeChanges) -> list[date]:
    if changes.full:
        return sorted(changes.days)
    return sorted(changes.days | {d - timedelta(days=1) for d in changes.days})


def _chunks(days: Sequence[date], rows: dict[date, int], max_rows: int) -> Iterator[list[date]]:
    chunk: list[date] = []
    total = 0
    for day in days:
        # The day's own rows and the next day's (read for sessions that cross midnight).
        size = rows.get(day, 0) + rows.get(day + timedelta(days=1), 0)
        if chunk and (len(chunk) >= CHUNK_DAYS or total + size > max_rows):
            yield chunk
            chunk, total = [], 0
        chunk.append(day)
        total += size
    if chunk:
        yield chunk


def run_silver(
    catalog: Catalog,
    lake: LakeSettings,
    settings: PipelineSettings,
    *,
    full: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> SilverReport:
    """Bring every silver table up to the newest bronze snapshot (all days when ``full``)."""
    started = time.perf_counter()
    bronze = load_existing(catalog, lake, settings.bronze_table)
    titles = read_titles(catalog, lake).select(["title_id", "runtime_min"])
    tables = {c.name: open_table(catalog, lake, c) for c in SILVER_TABLES}
    # Tables that processed the same bronze snapshot are computed together from one read.
    groups: dict[int | None, list[TableContract]] = {}
    for contract in SILVER_TABLES:
        since = None if full else _watermark(summary_property(tables[contract.name], WATERMARK))
        groups.setdefault(since, []).append(contract)

    runs = {c.name: TableRun(c.name) for c in SILVER_TABLES}
    current = bronze.current_snapshot()
    head = current.snapshot_id if current is not None else None
    for since, contracts in groups.items():
        changes = changes_since(bronze, since)
        if changes.head is None or (changes.snapshots == 0 and not full):
            continue
        days = _days_to_recompute(changes) if not full else sorted(changes.days)
        for contract in contracts:
            runs[contract.name].snapshots = changes.snapshots
            runs[contract.name].days = days
        progress(
            f"silver: {changes.snapshots} new bronze snapshot(s), {len(days)} day(s) to "
            f"recompute for {', '.join(c.name for c in contracts)}"
        )
        final = {WATERMARK: str(changes.head)}
        if not days:  # only empty snapshots (offsets moved): just record that we saw them
            for contract in contracts:
                replace_partitions(
                    tables[contract.name], contract, contract.arrow.empty_table(), [], final
                )
                runs[contract.name].committed = True
            continue
        chunks = list(_chunks(days, changes.rows_by_day, settings.silver_chunk_rows))
        with Engine(settings) as engine:
            engine.register("titles", titles)
            for index, chunk in enumerate(chunks):
                last = index == len(chunks) - 1
                _build_events(engine, catalog, lake, settings, chunk)
                for contract in contracts:
                    rows = engine.run(contract.name, dates=chunk)
                    # Intermediate chunks carry no watermark: a crash before the last one makes
                    # the next run start from the old watermark and redo every chunk.
                    replace_partitions(
                        tables[contract.name], contract, rows, chunk, final if last else {}
                    )
                    runs[contract.name].rows += rows.num_rows
                    runs[contract.name].committed = True
                progress(f"silver: {chunk[0]} .. {chunk[-1]} done ({index + 1}/{len(chunks)})")
    return SilverReport(head, list(runs.values()), time.perf_counter() - started)


def _build_events(
    engine: Engine,
    catalog: Catalog,
    lake: LakeSettings,
    settings: PipelineSettings,
    days: Sequence[date],
) -> None:
    """Materialize ``events``: the sessionized bronze rows around ``days``, and ``positions``."""
    start = datetime.combine(days[0], dtime(), UTC) - READ_MARGIN
    end = datetime.combine(days[-1] + timedelta(days=1), dtime(), UTC) + READ_MARGIN
    engine.register("bronze", read_bronze(catalog, lake, settings.bronze_table, start, end))
    engine.materialize("events", render(sql_text("silver_events"), {"gap_us": GAP_US}))
    query = (
        "SELECT COALESCE(MAX(json_array_length(get_json_object(details, '$.title_ids'))), 0) "
        "AS n FROM events WHERE event_type = 'impression'"
    )
    longest = engine.query(query).column("n")[0].as_py()
    engine.materialize("positions", f"SELECT CAST(range AS INT) AS i FROM range({int(longest)})")


def latest_event_day(catalog: Catalog, lake: LakeSettings) -> date | None:
    """The newest event day in silver playback or ratings, the data's own "as of" (from
    partition metadata, no data file read); None when neither exists or has a row."""
    days: list[date] = []
    for contract in (SILVER_PLAYBACK, SILVER_RATINGS):
        if not catalog.table_exists(table_identifier(lake, contract.name)):
            continue
        table = load_existing(catalog, lake, contract.name)
        if table.current_snapshot() is None:
            continue
        partitions = table.inspect.partitions()
        if partitions.num_rows == 0:  # an empty table's listing has no partition column
            continue
        for part, rows in zip(
            partitions.column("partition").to_pylist(),
            partitions.column("record_count").to_pylist(),
            strict=True,
        ):
            if rows and part.get(contract.partition_column) is not None:
                days.append(part[contract.partition_column])
    return max(days, default=None)
