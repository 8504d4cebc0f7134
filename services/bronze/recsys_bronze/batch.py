"""A micro-batch being collected, and its idempotent commit to the two Iceberg tables.

The commit is safe to repeat and safe against a concurrent writer of the same partitions: right
before appending it re-reads the offsets the table already holds and drops every row below them,
and Iceberg's optimistic concurrency (the append asserts the snapshot it was built on) turns a
race into a retry that re-reads again. Replaying records after a crash therefore cannot duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table

from recsys_bronze.append import append_by_day
from recsys_bronze.convert import EventRow, RejectRow
from recsys_bronze.offsets import OFFSETS_PROPERTY, Offsets, encode, merge, table_offsets

__all__ = ["Batch", "CommitResult", "ReadPositions", "TableCommit", "commit_batch"]


@dataclass
class Batch:
    """Records read since the last commit, grouped by partition of one topic."""

    topic: str
    events: dict[int, list[EventRow]] = field(default_factory=dict)
    rejects: dict[int, list[RejectRow]] = field(default_factory=dict)
    # Resent events dropped, per partition: no row, but their offsets advance like any other.
    duplicates: dict[int, int] = field(default_factory=dict)
    next_offsets: dict[int, int] = field(default_factory=dict)
    records: int = 0
    opened_at: float | None = None  # monotonic time of the first record: bounds its wait

    def _saw(self, partition: int, offset: int) -> None:
        if self.opened_at is None:
            self.opened_at = time.monotonic()
        self.records += 1
        self.next_offsets[partition] = max(offset + 1, self.next_offsets.get(partition, 0))

    def add_event(self, row: EventRow) -> None:
        self.events.setdefault(row["kafka_partition"], []).append(row)
        self._saw(row["kafka_partition"], row["kafka_offset"])

    def add_reject(self, row: RejectRow) -> None:
        self.rejects.setdefault(row["kafka_partition"], []).append(row)
        self._saw(row["kafka_partition"], row["kafka_offset"])

    def add_duplicate(self, partition: int, offset: int) -> None:
        self.duplicates[partition] = self.duplicates.get(partition, 0) + 1
        self._saw(partition, offset)

    def drop_partitions(self, partitions: Sequence[int]) -> None:
        """Forget records of partitions this writer no longer owns; their new owner re-reads them
        from the table's offsets."""
        for partition in partitions:
            dropped = len(self.events.pop(partition, ())) + len(self.rejects.pop(partition, ()))
            dropped += self.duplicates.pop(partition, 0)
            self.next_offsets.pop(partition, None)
            self.records -= dropped
        if not self.next_offsets:
            self.opened_at = None

    def age(self, now: float) -> float:
        return 0.0 if self.opened_at is None else now - self.opened_at

    def advance(self) -> Offsets:
        return {(self.topic, p): offset for p, offset in self.next_offsets.items()}


class ReadPositions:
    """The next offset expected per partition: a record below it was delivered before.

    aiokafka can hand out the same records twice, e.g. a fetch already in flight when the writer
    seeks on assignment. The commit's table filter only drops rows the table holds; two copies
    inside one batch would both land. So every record is checked against this position first.

    A partition the writer has not sought yet accepts nothing: aiokafka makes a new assignment
    fetchable (from the group's committed offset) before the assignment callback has read the
    table's offsets and sought, so records can arrive before the writer has rebuilt its dedup
    memory for them. They are fetched again from where the writer seeks.
    """

    def __init__(self) -> None:
        self._next: dict[int, int] = {}

    def reset(self, partition: int, offset: int) -> None:
        self._next[partition] = offset

    def forget(self, partition: int) -> None:
        self._next.pop(partition, None)

    def accept(self, partition: int, offset: int) -> bool:
        """True for a record not seen before in a sought partition (moves the position past it)."""
        expected = self._next.get(partition)
        if expected is None or offset < expected:
            return False
        self._next[partition] = offset + 1
        return True


@dataclass(frozen=True)
class TableCommit:
    """What one append did to one table."""

    rows: int  # rows appended
    replayed: int  # rows dropped because the table already held them
    offsets: Offsets  # the table's offsets after the commit
    snapshot_id: int | None  # None: nothing new, no snapshot was made
    attempts: int


@dataclass(frozen=True)
class CommitResult:
    events: TableCommit
    rejects: TableCommit | None  # None: the batch had no rejects


def _append_new(
    table: Table,
    rows_by_partition: Mapping[int, Sequence[Any]],
    topic: str,
    advance: Offsets,
    schema: pa.Schema,
    properties: Mapping[str, str],
    retries: int,
) -> TableCommit:
    for attempt in range(1, retries + 2):
        table.refresh()
        held = table_offsets(table)
        fresh: list[Any] = []
        replayed = 0
        for partition, rows in rows_by_partition.items():
            floor = held.get((topic, partition))
            keep = rows if floor is None else [r for r in rows if r["kafka_offset"] >= floor]
            fresh.extend(keep)
            replayed += len(rows) - len(keep)
        offsets = merge(held, advance)
        if not fresh and offsets == held:
            return TableCommit(0, replayed, held, None, attempt)
        try:
            # An empty append still makes a snapshot: that is how offsets advance past a batch
            # that held only rejects.
            append_by_day(table, fresh, schema, {**properties, OFFSETS_PROPERTY: encode(offsets)})
        except CommitFailedException:
            if attempt > retries:
                raise
            continue
        snapshot = table.current_snapshot()
        return TableCommit(
            len(fresh), replayed, offsets, snapshot.snapshot_id if snapshot else None, attempt
        )
    raise AssertionError("unreachable")  # the loop returns or raises


def commit_batch(
    events_table: Table,
    rejects_table: Table,
    batch: Batch,
    *,
    events_schema: pa.Schema,
    rejects_schema: pa.Schema,
    retries: int,
    properties: Mapping[str, str] | None = None,
) -> CommitResult:
    """Append the batch: rejects first, then events. Blocking; run it in a thread.

    Events go last because their table's offsets are where a restart resumes: if the process dies
    between the two appends, the replay re-offers the rejects, which their own table's offsets
    filter out, and the events, which were never written.
    """
    advance = batch.advance()
    props = dict(properties or {})
    rejects = None
    if batch.rejects:
        rejects = _append_new(
            rejects_table, batch.rejects, batch.topic, advance, rejects_schema, props, retries
        )
    events = _append_new(
        events_table, batch.events, batch.topic, advance, events_schema, props, retries
    )
    return CommitResult(events=events, rejects=rejects)
