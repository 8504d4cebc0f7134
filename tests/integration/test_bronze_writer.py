"""The bronze writer against the real Kafka and an Iceberg warehouse in tmp_path.

Every test has its own topic, consumer group and warehouse. Waits are bounded by generous guards
(`asyncio.timeout`) that only turn a hang into a failure; nothing asserts on timing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from aiokafka.admin import NewTopic
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY
from pyiceberg.table import Table

from recsys.clients.kafka import kafka_admin, kafka_producer
from recsys.config import LakeSettings, Settings
from recsys.events.v1 import events_pb2
from recsys.lake import load_catalog, table_identifier
from recsys_bronze import BronzeSettings, BronzeWriter, CommitResult
from recsys_bronze.append import DAY_US
from recsys_bronze.offsets import table_offsets
from recsys_bronze.writer import AfterTableCommit
from tests.ingest_support import JSON_HEADERS, ingest_settings, running_ingest
from tests.ingest_support import event as api_event

BASE_S = 1_767_225_600  # 2026-01-01T00:00:00Z
GUARD_S = 90


class SimulatedCrash(Exception):
    """Raised between the Iceberg commit and the Kafka commit: the process 'dies' right there."""


# -- fixtures and helpers ------------------------------------------------------------------------


def _lake_settings(infra: Settings, tmp_path: Path) -> Settings:
    return infra.model_copy(update={"lake": LakeSettings(warehouse=tmp_path / "lake")})


def _bronze(unique: str, **overrides: Any) -> BronzeSettings:
    return BronzeSettings(
        topic=f"test.bronze.{unique}", group_id=f"test-bronze-{unique}", **overrides
    )


async def _create_topic(settings: Settings, topic: str, partitions: int) -> None:
    admin = kafka_admin(settings.kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


def _event(seq: int, users: int = 37) -> events_pb2.Event:
    """Deterministic, varied events: five event days, every details case in turn."""
    user = f"u{seq % users}"
    occurred = BASE_S + (seq % 5) * 86_400 + seq
    event = events_pb2.Event(
        event_id=f"e{seq:07d}",
        user_id=user,
        title_id=f"tt{seq % 101}",
        device=events_pb2.DEVICE_MOBILE,
        country="BR",
        occurred_at=Timestamp(seconds=occurred, nanos=1_000 * (seq % 1000)),
        received_at=Timestamp(seconds=occurred + 1),
        app_version="1.0",
    )
    if seq % 3 == 0:
        event.event_type = events_pb2.EVENT_TYPE_PLAY
        event.play.position_sec = float(seq)
    elif seq % 3 == 1:
        event.event_type = events_pb2.EVENT_TYPE_RATE
        event.rate.rating = 1 + seq % 5
    else:
        event.event_type = events_pb2.EVENT_TYPE_SEARCH
        event.title_id = ""
        event.search.query = f"q{seq}"
    return event


async def _produce(settings: Settings, topic: str, values: Iterable[tuple[bytes, bytes]]) -> int:
    producer = kafka_producer(settings.kafka, linger_ms=20)
    await producer.start()
    sent = 0
    try:
        pending = []
        for key, value in values:
            pending.append(await producer.send(topic, value, key=key))
            sent += 1
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def _produce_events(settings: Settings, topic: str, seqs: range) -> int:
    return await _produce(
        settings,
        topic,
        ((e.user_id.encode(), e.SerializeToString()) for e in map(_event, seqs)),
    )


def _load(settings: Settings, name: str) -> Table:
    return load_catalog(settings.lake).load_table(table_identifier(settings.lake, name))


def _total_records(settings: Settings, name: str) -> int:
    try:
        snapshot = _load(settings, name).current_snapshot()
    except Exception:  # table not created yet by the writer
        return 0
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary.get("total-records") or 0)


async def _until(predicate: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(GUARD_S):
            while not predicate():  # noqa: ASYNC110 - a table has no change notification to await
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"gave up waiting for {what}") from None


async def _until_rows(settings: Settings, name: str, n: int) -> None:
    await _until(lambda: _total_records(settings, name) >= n, f"{n} rows in {name}")


async def _crash(task: asyncio.Task[None]) -> None:
    """End the writer's task as a crash would: no graceful stop, nothing flushed.

    Cancel until it is done, before ``_running`` looks: with one ``cancel()`` the task was
    sometimes still running when ``_running`` checked, which then asked it to stop gracefully,
    and the graceful stop committed the records the crash was meant to lose (about 1 run in
    12 with the CPU saturated).
    """
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.1)


@asynccontextmanager
async def _running(
    settings: Settings, bronze: BronzeSettings, hook: AfterTableCommit | None = None
) -> AsyncIterator[tuple[BronzeWriter, asyncio.Task[None]]]:
    """A writer task; stopped gracefully at the end unless the test already ended it."""
    writer = BronzeWriter(settings, bronze, after_table_commit=hook)
    task = asyncio.create_task(writer.run())
    try:
        yield writer, task
    finally:
        if not task.done():
            writer.stop()
        async with asyncio.timeout(GUARD_S):
            await asyncio.gather(task, return_exceptions=True)


def _rows(settings: Settings, name: str) -> pa.Table:
    return _load(settings, name).scan().to_arrow()


def _assert_exactly(settings: Settings, bronze: BronzeSettings, seqs: range) -> None:
    rows = _rows(settings, bronze.table)
    ids = rows["event_id"].to_pylist()
    assert len(ids) == len(seqs), "rows lost or duplicated"
    assert sorted(ids) == [f"e{s:07d}" for s in seqs]
    coords = list(
        zip(rows["kafka_partition"].to_pylist(), rows["kafka_offset"].to_pylist(), strict=True)
    )
    assert len(set(coords)) == len(coords), "a Kafka record landed twice"


async def _group_offsets(settings: Settings, group: str) -> dict[int, int]:
    admin = kafka_admin(settings.kafka)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def _snapshot_summaries(table: Table) -> list[dict[str, str]]:
    return [
        dict(s.summary.additional_properties)
        for s in table.snapshots()
        if s.summary is not None and "recsys.bronze.offsets" in s.summary.additional_properties
    ]


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- tests ---------------------------------------------------------------------------------------


async def test_n_events_become_exactly_n_rows_with_their_values_and_day_partitions(
    infra: Settings, unique: str, tmp_path: Path
) -> None:
    settings, bronze = _lake_settings(infra, tmp_path), _bronze(unique, commit_max_rows=200)
    n = 1_000
    await _create_topic(settings, bronze.topic, partitions=3)
    await _produce_events(settings, bronze.topic, range(n))
    rows_before = _metric("recsys_bronze_rows_committed_total", table=bronze.table)
    commits_before = _metric("recsys_bronze_commit_records_count")
    async with _running(settings, bronze) as (writer, _):
        await _until_rows(settings, bronze.table, n)
    assert _metric("recsys_bronze_rows_committed_total", table=bronze.table) - rows_before == n
    assert _metric("recsys_bronze_commit_records_count") - commits_before == writer.commits
    for p in range(3):
        assert _metric("recsys_bronze_lag_records", topic=bronze.topic, partition=str(p)) == 0

    _assert_exactly(settings, bronze, range(n))
    rows = _rows(settings, bronze.table).sort_by("event_id").to_pylist()
    for seq, row in enumerate(rows):
        event = _event(seq)
        assert row["event_id"] == event.event_id
        assert row["user_id"] == event.user_id
        assert row["event_type"] == ["play", "rate", "search"][seq % 3]
        assert row["title_id"] == (event.title_id or None)
        assert (row["device"], row["country"], row["app_version"]) == ("mobile", "BR", "1.0")
        occurred_us = event.occurred_at.seconds * 1_000_000 + event.occurred_at.nanos // 1_000
        assert int(row["occurred_at"].timestamp() * 1_000_000) == occurred_us
        assert row["occurred_at"].utcoffset().total_seconds() == 0
        assert row["received_at"].timestamp() == event.received_at.seconds
        assert row["details_kind"] == event.WhichOneof("details")
        assert row["details"] is not None
    # Partitioned by day(occurred_at): every data file holds exactly one event day, its partition.
    table = _load(settings, bronze.table)
    assert [f.name for f in table.spec().fields] == ["occurred_at_day"]
    days = set()
    for task in table.scan().plan_files():
        day = task.file.partition[0]
        micros = pq.read_table(task.file.file_path.removeprefix("file://"))["occurred_at"]
        assert {m // DAY_US for m in micros.cast(pa.int64()).to_pylist()} == {day}
        days.add(day)
    assert days == {BASE_S // 86_400 + d for d in range(5)}
    # The table's offsets cover every record, and the group mirrors them after a graceful stop.
    held = table_offsets(table)
    per_partition: dict[int, int] = {}
    for p in _rows(settings, bronze.table)["kafka_partition"].to_pylist():
        per_partition[p] = per_partition.get(p, 0) + 1
    assert held == {(bronze.topic, p): c for p, c in per_partition.items()}
    assert await _group_offsets(settings, bronze.group_id) == {p: o for (_, p), o in held.items()}


async def test_a_micro_commit_never_exceeds_commit_max_rows(
    infra: Settings, unique: str, tmp_path: Path
) -> None:
    settings = _lake_settings(infra, tmp_path)
    bronze = _bronze(unique, commit_max_rows=40, commit_interval_s=600)
    await _create_topic(settings, bronze.topic, partitions=2)
    await _produce_events(settings, bronze.topic, range(240))
    async with _running(settings, bronze):
        # With a 10-minute interval only the size bound can trigger these commits.
        await _until_rows(settings, bronze.table, 240)
    sizes = [int(s["added-records"]) for s in _snapshot_summaries(_load(settings, bronze.table))]
    # A rebalance or shutdown may commit a smaller remainder; no commit is ever larger.
    assert max(sizes) == 40
    assert sum(sizes) == 240


async def test_the_interval_commits_a_batch_smaller_than_commit_max_rows(
    infra: Settings, unique: str, tmp_path: Path
) -> None:
    settings = _lake_settings(infra, tmp_path)
    bronze = _bronze(unique, commit_max_rows=100_000, commit_interval_s=0.5)
    await _create_topic(settings, bronze.topic, partitions=2)
    async with _running(settings, bronze) as (writer, _):
        await _produce_events(settings, bronze.topic, range(30))
        # Far below the size bound: only the interval can commit these, while the writer runs.
        await _until_rows(settings, bronze.table, 30)
        await _produce_events(settings, bronze.topic, range(30, 45))
        await _until_rows(settings, bronze.table, 45)
        assert writer.commits >= 1
    _assert_exactly(settings, bronze, range(45))


async def test_a_crash_between_iceberg_and_kafka_commit_neither_loses_nor_duplicates(
    infra: Settings, unique: str, tmp_path: Path
) -> None:
    settings = _lake_settings(infra, tmp_path)
    bronze = _bronze(unique, commit_max_rows=50, commit_interval_s=600)
    n = 300
    await _create_topic(settings, bronze.topic, partitions=3)
    await _produce_events(settings, bronze.topic, range(n))

    calls = 0

    async def crash_on_third(_: CommitResult) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise SimulatedCrash

    async with _running(settings, bronze, crash_on_third) as (_, task):
        async with asyncio.timeout(GUARD_S):
            await asyncio.gather(task, return_exceptions=True)
        assert isinstance(task.exception(), SimulatedCrash)

    # Exactly the window: the table holds three commits, the group only two.
    table_held = table_offsets(_load(settings, bronze.table))
    assert sum(table_held.values()) == 150
    assert sum((await _group_offsets(settings, bronze.group_id)).values()) == 100

    async with _running(settings, bronze, None):
        await _until_rows(settings, bronze.table, n)
    _assert_exactly(settings, bronze, range(n))
    # The restart resumed where the table ends: no record was even re-read.
    assert (
        sum(int(s["added-records"]) for s in _snapshot_summaries(_load(settings, bronze.table)))
        == n
    )


async def test_a_writer_cancelled_with_records_pending_loses_nothing_on_restart(
    infra: Settings, unique: str, tmp_path: Path
) -> None:
    settings = _lake_settings(infra, tmp_path)
    bronze = _bronze(unique, commit_max_rows=100, commit_interval_s=600)
    await _create_topic(settings, bronze.topic, partitions=2)
    await _produce_events(settings, bronze.topic, range(250))
    async with _running(settings, bronze) as (writer, task):
        await _until_rows(settings, bronze.table, 200)
        await _until(lambda: writer.pending == 50, "50 records read but not committed")
        await _crash(task)  # the pending 50 were read from Kafka and never written
    assert _total_records(settings, bronze.table) == 200

    async with _running(settings, bronze) as (writer, _):
        # The restart re-reads exactly the 50 the table lacks; the graceful stop commits them.
        await _until(lambda: writer.pending == 50, "the 50 lost records read again")
    _assert_exactly(settings, bronze, range(250))


async def test_malformed_records_are_dead_lettered_and_do_not_block(
    infra: Settings, unique: str, tmp_path: Path
) -> None:
    settings = _lake_settings(infra, tmp_path)
    bronze = _bronze(unique, commit_max_rows=7, commit_interval_s=0.5)
    await _create_topic(settings, bronze.topic, partitions=1)
    garbage = b"\xff\xff\xff"
    no_id = events_pb2.Event(user_id="u1").SerializeToString()
    good = [(e.user_id.encode(), e.SerializeToString()) for e in map(_event, range(20))]
    rejected_before = _metric("recsys_bronze_rejects_total", topic=bronze.topic)
    await _produce(
        settings, bronze.topic, [*good[:10], (b"u1", garbage), (b"u1", no_id), *good[10:]]
    )

    async with _running(settings, bronze):
        await _until_rows(settings, bronze.table, 20)
        await _until_rows(settings, bronze.rejects_table, 2)

    _assert_exactly(settings, bronze, range(20))
    rejects = _rows(settings, bronze.rejects_table).sort_by("kafka_offset").to_pylist()
    assert [(r["kafka_offset"], r["kafka_value"], r["kafka_key"]) for r in rejects] == [
        (10, garbage, b"u1"),
        (11, no_id, b"u1"),
    ]
    assert "not a recsys.events.v1.Event" in rejects[0]["error"]
    assert rejects[1]["error"] == "event_id is empty"
    assert all(r["kafka_topic"] == bronze.topic for r in rejects)
    assert table_offsets(_load(settings, bronze.table)) == {(bronze.topic, 0): 22}
    assert _metric("recsys_bronze_rejects_total", topic=bronze.topic) - rejected_before == 2


async def test_two_writers_sharing_the_partitions_write_every_event_once(
    infra: Settings, unique: str, tmp_path: Path
) -> None:
    settings = _lake_settings(infra, tmp_path)
    bronze = _bronze(unique, commit_max_rows=50, commit_interval_s=0.5)
    await _create_topic(settings, bronze.topic, partitions=4)
    await _produce_events(settings, bronze.topic, range(300))
    async with _running(settings, bronze) as (first, _):
        await _until_rows(settings, bronze.table, 100)
        # A second member joins: the group rebalances and each writer seeks its new partitions
        # to the table's offsets; both then commit to the same table concurrently.
        async with _running(settings, bronze) as (second, _):
            await _until(
                lambda: (
                    first.partitions | second.partitions == {0, 1, 2, 3}
                    and not first.partitions & second.partitions
                    and bool(second.partitions)
                ),
                "the partitions split between the two writers",
            )
            await _produce_events(settings, bronze.topic, range(300, 600))
            await _until_rows(settings, bronze.table, 600)
            assert first.commits > 0
            assert second.commits > 0
    _assert_exactly(settings, bronze, range(600))


async def test_a_killed_writer_process_restarts_without_loss_or_duplicates(
    infra: Settings, unique: str, tmp_path: Path
) -> None:
    settings, bronze = _lake_settings(infra, tmp_path), _bronze(unique)
    n = 3_000
    await _create_topic(settings, bronze.topic, partitions=3)
    await _produce_events(settings, bronze.topic, range(n))
    env = {
        **os.environ,
        "RECSYS_LAKE__WAREHOUSE": str(settings.lake.warehouse),
        "RECSYS_BRONZE__TOPIC": bronze.topic,
        "RECSYS_BRONZE__GROUP_ID": bronze.group_id,
        "RECSYS_BRONZE__COMMIT_MAX_ROWS": "100",
        "RECSYS_BRONZE__COMMIT_INTERVAL_S": "600",
    }

    def spawn(name: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("wb") as log:  # the child keeps its own descriptor
            return subprocess.Popen(
                [sys.executable, "-m", "recsys_bronze"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    first = spawn("first")
    try:
        await _until_rows(settings, bronze.table, 500)
    finally:
        first.send_signal(signal.SIGKILL)  # no flush, no Kafka commit, no group leave
        first.wait(timeout=GUARD_S)
    killed_at = _total_records(settings, bronze.table)
    assert killed_at < n

    second = spawn("second")
    try:
        await _until_rows(settings, bronze.table, n - n % 100)
    finally:
        second.send_signal(signal.SIGTERM)  # graceful: flushes the last partial batch
        second.wait(timeout=GUARD_S)
    assert second.returncode == 0
    _assert_exactly(settings, bronze, range(n))


async def test_throughput_of_a_backlog(infra: Settings, unique: str, tmp_path: Path) -> None:
    """Prints sustained rows/s for a pre-filled topic (a figure for the report, not a check)."""
    settings, bronze = _lake_settings(infra, tmp_path), _bronze(unique, commit_max_rows=10_000)
    n = 60_000
    await _create_topic(settings, bronze.topic, partitions=6)
    await _produce_events(settings, bronze.topic, range(n))
    started = time.perf_counter()
    async with _running(settings, bronze) as (writer, _):
        await _until_rows(settings, bronze.table, n)
        elapsed = time.perf_counter() - started
        commits = writer.commits
    _assert_exactly(settings, bronze, range(n))
    print(
        f"\nbronze throughput: {n} rows in {elapsed:.2f} s = {n / elapsed:,.0f} rows/s "
        f"({commits} commits of <= {bronze.commit_max_rows} rows, start-up included)"
    )


# -- resends: the same event_id again ------------------------------------------------------------


def _records_held(settings: Settings, bronze: BronzeSettings) -> int:
    """Kafka records the events table accounts for (rows, rejects and dropped resends)."""
    try:
        return sum(table_offsets(_load(settings, bronze.table)).values())
    except Exception:  # table not created yet by the writer
        return 0


def _resend(seq: int) -> tuple[bytes, bytes]:
    event = _event(seq)
    return event.user_id.encode(), event.SerializeToString()


async def test_an_event_posted_twice_through_ingest_becomes_one_row(
    infra: Settings, unique: str, tmp_path: Path
) -> None:
    settings = _lake_settings(infra, tmp_path)
    bronze = _bronze(unique, commit_interval_s=0.5)
    await _create_topic(settings, bronze.topic, partitions=3)
    first = [api_event("play", user_id=f"member-{i}") for i in range(10)]
    later = api_event("rate", user_id="member-3")
    # A client whose answer got lost resends the event, once alone and once with a new one.
    async with running_ingest(ingest_settings(settings, bronze.topic)) as (_, client):
        for events in (first, [first[3]], [first[3], later]):
            response = await client.post(
                "/v1/events", content=orjson.dumps({"events": events}), headers=JSON_HEADERS
            )
            assert response.status_code == 202, response.text
    dropped_before = _metric("recsys_bronze_duplicates_total", topic=bronze.topic)

    async with _running(settings, bronze):
        await _until(lambda: _records_held(settings, bronze) == 13, "all 13 records committed")

    ids = Counter(_rows(settings, bronze.table)["event_id"].to_pylist())
    assert ids == Counter(e["event_id"] for e in [*first, later])
    assert _metric("recsys_bronze_duplicates_total", topic=bronze.topic) - dropped_before == 2


async def test_a_resend_is_one_row_across_a_crash_and_restart(
    infra: Settings, unique: str, tmp_path: Path
) -> None:
    settings = _lake_settings(infra, tmp_path)
    bronze = _bronze(unique, commit_max_rows=100, commit_interval_s=600)
    await _create_topic(settings, bronze.topic, partitions=2)
    await _produce_events(settings, bronze.topic, range(100))
    async with _running(settings, bronze) as (writer, task):
        await _until_rows(settings, bronze.table, 100)
        # Resends of two events already in the table, then 48 new ones: one commit's worth.
        await _produce(
            settings,
            bronze.topic,
            [_resend(5), _resend(50), *map(_resend, range(100, 148))],
        )
        await _until(lambda: writer.pending == 50, "50 records read but not committed")
        await _crash(task)  # the writer's memory of recent event_ids is gone with it
    assert _total_records(settings, bronze.table) == 100

    async with _running(settings, bronze) as (writer, _):
        # The restart re-reads the table's last records to remember their ids, then the 50.
        await _until(lambda: writer.pending == 50, "the 50 lost records read again")
    _assert_exactly(settings, bronze, range(148))
    assert _records_held(settings, bronze) == 150


async def test_a_resend_beyond_dedup_max_ids_becomes_a_second_row(
    infra: Settings, unique: str, tmp_path: Path
) -> None:
    """Where the guarantee ends: the first copy must be among the partition's last N records."""
    settings = _lake_settings(infra, tmp_path)
    bronze = _bronze(unique, commit_interval_s=0.5, dedup_max_ids=10)
    await _create_topic(settings, bronze.topic, partitions=1)
    await _produce_events(settings, bronze.topic, range(30))
    await _produce(settings, bronze.topic, [_resend(0), _resend(25)])
    async with _running(settings, bronze):
        await _until(lambda: _records_held(settings, bronze) == 32, "all 32 records committed")
    ids = Counter(_rows(settings, bronze.table)["event_id"].to_pylist())
    assert (ids["e0000000"], ids["e0000025"], len(ids)) == (2, 1, 30)
