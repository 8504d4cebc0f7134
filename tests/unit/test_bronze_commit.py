"""The idempotent micro-commit against a real Iceberg table in a tmp warehouse (no Kafka)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
from pyiceberg.table import Table

from recsys.config import LakeSettings
from recsys.lake import load_catalog
from recsys_bronze.batch import Batch, ReadPositions, commit_batch
from recsys_bronze.convert import EventRow, reject_row
from recsys_bronze.offsets import table_offsets
from recsys_bronze.tables import (
    EVENTS_ARROW,
    REJECTS_ARROW,
    open_events_table,
    open_rejects_table,
)

TOPIC = "t"
DAY_US = 86_400 * 1_000_000


@pytest.fixture
def tables(tmp_path: Path) -> tuple[Table, Table]:
    lake = LakeSettings(warehouse=tmp_path / "lake")
    catalog = load_catalog(lake)
    return open_events_table(catalog, lake, "ev"), open_rejects_table(catalog, lake, "rj")


def _row(partition: int, offset: int) -> EventRow:
    return EventRow(
        event_id=f"{partition}-{offset}",
        event_type="play",
        user_id="u",
        title_id=None,
        device=None,
        country=None,
        occurred_at=(offset % 3) * DAY_US,  # three event days
        received_at=None,
        app_version=None,
        details_kind=None,
        details=None,
        kafka_partition=partition,
        kafka_offset=offset,
        ingested_at=0,
    )


def _batch(offsets: range, partitions: tuple[int, ...] = (0, 1)) -> Batch:
    batch = Batch(TOPIC)
    for partition in partitions:
        for offset in offsets:
            batch.add_event(_row(partition, offset))
    return batch


def _commit(tables: tuple[Table, Table], batch: Batch):  # type: ignore[no-untyped-def]
    events, rejects = tables
    return commit_batch(
        events,
        rejects,
        batch,
        events_schema=EVENTS_ARROW,
        rejects_schema=REJECTS_ARROW,
        retries=2,
    )


def _ids(table: Table) -> list[str]:
    table.refresh()
    return sorted(table.scan(selected_fields=("event_id",)).to_arrow()["event_id"].to_pylist())


def test_a_batch_lands_once_with_its_offsets_and_day_partitions(
    tables: tuple[Table, Table],
) -> None:
    result = _commit(tables, _batch(range(10)))
    assert (result.events.rows, result.events.replayed, result.rejects) == (20, 0, None)
    events = tables[0]
    assert table_offsets(events) == {(TOPIC, 0): 10, (TOPIC, 1): 10}
    assert len(_ids(events)) == 20
    assert _file_days(events) == {0, 1, 2}


def _file_days(table: Table) -> set[int]:
    """The day partition of every data file, checked against the rows the file really holds."""
    days = set()
    for task in table.scan().plan_files():
        day = task.file.partition[0]
        rows = pq.read_table(task.file.file_path.removeprefix("file://"))
        micros = rows["occurred_at"].cast(pa.int64()).to_pylist()
        assert {m // DAY_US for m in micros} == {day}
        days.add(day)
    return days


def test_committing_the_same_records_again_adds_nothing(tables: tuple[Table, Table]) -> None:
    _commit(tables, _batch(range(10)))
    again = _commit(tables, _batch(range(10)))
    assert (again.events.rows, again.events.replayed, again.events.snapshot_id) == (0, 20, None)
    overlap = _commit(tables, _batch(range(5, 15)))  # a replay that runs past the table's end
    assert (overlap.events.rows, overlap.events.replayed) == (10, 10)
    assert len(_ids(tables[0])) == 30
    assert table_offsets(tables[0]) == {(TOPIC, 0): 15, (TOPIC, 1): 15}


def test_a_commit_of_one_partition_keeps_the_others_offsets(tables: tuple[Table, Table]) -> None:
    _commit(tables, _batch(range(4)))
    _commit(tables, _batch(range(4, 6), partitions=(1,)))
    assert table_offsets(tables[0]) == {(TOPIC, 0): 4, (TOPIC, 1): 6}


def test_rejects_advance_the_events_table_and_are_not_doubled_on_replay(
    tables: tuple[Table, Table],
) -> None:
    def batch() -> Batch:
        b = Batch(TOPIC)
        b.add_reject(
            reject_row(
                topic=TOPIC,
                partition=0,
                offset=0,
                timestamp_ms=None,
                key=None,
                value=b"\xff",
                error="bad",
                rejected_at=0,
            )
        )
        return b

    first = _commit(tables, batch())
    assert first.rejects is not None
    assert first.rejects.rows == 1
    # The only record was a reject, yet the events table now resumes after it (empty snapshot).
    assert first.events.rows == 0
    assert first.events.snapshot_id is not None
    assert table_offsets(tables[0]) == {(TOPIC, 0): 1}
    second = _commit(tables, batch())
    assert second.rejects is not None
    assert (second.rejects.rows, second.rejects.replayed) == (0, 1)
    rejects = tables[1]
    rejects.refresh()
    assert rejects.scan().to_arrow().num_rows == 1


def test_dropping_a_revoked_partition_forgets_its_records() -> None:
    batch = _batch(range(3))
    batch.drop_partitions([0])
    assert batch.records == 3
    assert batch.advance() == {(TOPIC, 1): 3}
    batch.drop_partitions([1])
    assert (batch.records, batch.opened_at) == (0, None)


def test_a_commit_that_loses_a_race_filters_again_against_the_winner(
    tables: tuple[Table, Table], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = LakeSettings(warehouse=tmp_path / "lake")
    catalog = load_catalog(lake)
    rival = (open_events_table(catalog, lake, "ev"), open_rejects_table(catalog, lake, "rj"))
    events = tables[0]
    refresh = events.refresh
    raced = False

    def refresh_then_lose_the_race() -> Table:
        # Another writer (a zombie that still held the partitions) commits offsets 0-5 right
        # after we read the table's offsets: our append was built on a stale snapshot.
        nonlocal raced
        table = refresh()
        if not raced:
            raced = True
            _commit(rival, _batch(range(6)))
        return table

    monkeypatch.setattr(events, "refresh", refresh_then_lose_the_race)
    result = _commit(tables, _batch(range(10)))
    assert (result.events.attempts, result.events.rows, result.events.replayed) == (2, 8, 12)
    assert _ids(events) == sorted(f"{p}-{o}" for p in (0, 1) for o in range(10))
    assert table_offsets(events) == {(TOPIC, 0): 10, (TOPIC, 1): 10}
    # The files of the losing attempt were deleted, not left behind as orphans.
    on_disk = {str(p) for p in Path(events.location().removeprefix("file://")).rglob("*.parquet")}
    referenced = {t.file.file_path.removeprefix("file://") for t in events.scan().plan_files()}
    assert on_disk == referenced


def test_read_positions_drop_a_redelivered_record() -> None:
    positions = ReadPositions()
    positions.reset(0, 10)  # sought to the table's offset on assignment
    assert not positions.accept(0, 9)  # from a fetch that was in flight before the seek
    assert [positions.accept(0, o) for o in (10, 11, 10, 11, 12)] == [
        True,
        True,
        False,
        False,
        True,
    ]
    # Not sought yet (the assignment callback is still reading the table's offsets), or revoked:
    # nothing is accepted; the records are fetched again from where the writer seeks.
    assert not positions.accept(1, 0)
    positions.forget(0)
    assert not positions.accept(0, 13)
    positions.reset(1, 0)
    assert positions.accept(1, 0)
