"""The bronze writer: Kafka events -> Iceberg ``bronze_events`` in micro-commits, exactly once.

    writer = BronzeWriter(settings, load_bronze_settings())
    task = asyncio.create_task(writer.run())
    ...; writer.stop(); await task          # flushes, commits, leaves the group

Order of a micro-commit: Iceberg appends (offsets in the snapshot summary) -> Kafka offset commit.
The table, not the consumer group, says where to resume: on every partition assignment the writer
seeks to the offsets of the table's newest bronze snapshot. A crash after the Iceberg commit and
before the Kafka commit therefore re-reads nothing that is in the table, and a crash before the
Iceberg commit re-reads everything that is not. Cancelling :meth:`run` is such a crash: nothing
pending is flushed.

A resent event (same event_id, a client's retry) is dropped when its first copy was read from the
same partition within the dedup window (:mod:`.dedup`); on assignment the writer first re-reads the
last ``dedup_max_ids`` records the table already holds, only to remember their event_ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from recsys.clients.kafka import kafka_consumer
from recsys.config import Settings
from recsys.lake import load_catalog, table_identifier
from recsys.log import get_logger
from recsys_bronze import metrics
from recsys_bronze.batch import Batch, CommitResult, ReadPositions, commit_batch
from recsys_bronze.convert import Rejected, event_id_of, event_row, reject_row
from recsys_bronze.dedup import RecentIds
from recsys_bronze.offsets import Offsets, table_offsets
from recsys_bronze.settings import BronzeSettings
from recsys_bronze.tables import (
    EVENTS_ARROW,
    REJECTS_ARROW,
    open_events_table,
    open_rejects_table,
)

__all__ = ["AfterTableCommit", "BronzeWriter"]

log = get_logger(__name__)

AfterTableCommit = Callable[[CommitResult], Awaitable[None]]
"""Called between the Iceberg commit and the Kafka commit (tests use it to crash right there)."""

_IDLE_POLL_S = 1.0


class BronzeWriter:
    def __init__(
        self,
        settings: Settings,
        bronze: BronzeSettings,
        *,
        client_id: str | None = None,
        after_table_commit: AfterTableCommit | None = None,
    ) -> None:
        self._settings = settings
        self._bronze = bronze
        self._client_id = client_id or f"{settings.kafka.client_id}-bronze"
        self._after_table_commit = after_table_commit
        self._stopping = asyncio.Event()
        self._batch = Batch(bronze.topic)
        self._held: Offsets = {}  # the events table's offsets as of our last read or commit
        self._positions = ReadPositions()
        self._recent: dict[int, RecentIds] = {}  # per owned partition, when dedup is on
        # Per partition, the table's offset at assignment: records below it are re-read only to
        # rebuild the dedup memory.
        self._warm_until: dict[int, int] = {}
        self._catalog: Catalog | None = None
        self.commits = 0  # micro-commits done by this instance (events + rejects appended)
        self.partitions: frozenset[int] = frozenset()  # of the topic, owned right now

    @property
    def pending(self) -> int:
        """Records read but not yet committed (lost to a crash now, and re-read on restart)."""
        return self._batch.records

    def stop(self) -> None:
        """Ask :meth:`run` to flush what it holds, commit and return."""
        self._stopping.set()

    async def run(self) -> None:
        lake, bronze = self._settings.lake, self._bronze
        catalog = await asyncio.to_thread(load_catalog, lake)
        self._catalog = catalog
        events = await asyncio.to_thread(open_events_table, catalog, lake, bronze.table)
        rejects = await asyncio.to_thread(open_rejects_table, catalog, lake, bronze.rejects_table)
        consumer = kafka_consumer(
            self._settings.kafka, group_id=bronze.group_id, client_id=self._client_id
        )
        consumer.subscribe([bronze.topic], listener=_Rebalance(self, consumer))
        await consumer.start()
        log.info("bronze.started", topic=bronze.topic, table=".".join(events.name()))
        # Commits run inline, not overlapped with reading the next batch: on this 2-core machine
        # an overlapped commit measured no faster (decoding and the commit share one GIL), and the
        # inline loop keeps the crash points obvious.
        try:
            while not self._stopping.is_set():
                await self._poll(consumer)
                if self._due():
                    await self._flush(consumer, events, rejects, self._take_batch())
            await self._flush(consumer, events, rejects, self._take_batch())
        finally:
            # No commit here: on cancellation (a crash) the pending batch is simply not written.
            metrics.READY.set(0)
            await consumer.stop()
        log.info("bronze.stopped", commits=self.commits)

    def _take_batch(self) -> Batch:
        batch, self._batch = self._batch, Batch(self._bronze.topic)
        return batch

    # -- reading -----------------------------------------------------------------------------

    def _due(self) -> bool:
        batch = self._batch
        return batch.records >= self._bronze.commit_max_rows or (
            batch.records > 0 and batch.age(time.monotonic()) >= self._bronze.commit_interval_s
        )

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        batch, bronze = self._batch, self._bronze
        wait = (
            _IDLE_POLL_S
            if batch.records == 0
            else max(0.0, min(_IDLE_POLL_S, bronze.commit_interval_s - batch.age(time.monotonic())))
        )
        # max_records keeps a commit at or under commit_max_rows exactly.
        fetched = await consumer.getmany(
            timeout_ms=int(wait * 1000), max_records=bronze.commit_max_rows - batch.records
        )
        now_us = time.time_ns() // 1_000
        for tp, records in fetched.items():
            for record in records:
                self._add(tp, record, now_us)
        self._update_lag(consumer)
        self._update_dedup_metrics()

    def _add(self, tp: TopicPartition, record: Any, now_us: int) -> None:
        if not self._positions.accept(tp.partition, record.offset):
            metrics.RECORDS_REDELIVERED.labels(topic=tp.topic).inc()
            return
        recent = self._recent.get(tp.partition)
        if record.offset < self._warm_until.get(tp.partition, 0):
            # Already in the table: only its event_id matters, for the dedup memory.
            event_id = event_id_of(record.value)
            if recent is not None and event_id is not None:
                recent.seen(event_id, record.timestamp)
            return
        try:
            row = event_row(
                record.value, partition=tp.partition, offset=record.offset, ingested_at=now_us
            )
        except Rejected as exc:
            metrics.REJECTS.labels(topic=tp.topic).inc()
            log.warning(
                "bronze.reject", partition=tp.partition, offset=record.offset, error=str(exc)
            )
            self._batch.add_reject(
                reject_row(
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=record.offset,
                    timestamp_ms=record.timestamp,
                    key=record.key,
                    value=record.value,
                    error=str(exc),
                    rejected_at=now_us,
                )
            )
            return
        if recent is not None and recent.seen(row["event_id"], record.timestamp):
            metrics.DUPLICATES.labels(topic=tp.topic).inc()
            log.debug(
                "bronze.duplicate",
                partition=tp.partition,
                offset=record.offset,
                event_id=row["event_id"],
            )
            self._batch.add_duplicate(tp.partition, record.offset)
            return
        self._batch.add_event(row)

    # -- committing --------------------------------------------------------------------------

    async def _flush(
        self, consumer: AIOKafkaConsumer, events: Table, rejects: Table, batch: Batch
    ) -> None:
        if batch.records == 0:
            return
        started = time.perf_counter()
        result = await asyncio.to_thread(
            commit_batch,
            events,
            rejects,
            batch,
            events_schema=EVENTS_ARROW,
            rejects_schema=REJECTS_ARROW,
            retries=self._bronze.commit_retries,
            properties={"recsys.bronze.writer": self._client_id},
        )
        self._held = result.events.offsets
        if self._after_table_commit is not None:
            await self._after_table_commit(result)
        await self._commit_kafka(consumer, result.events.offsets)
        elapsed = time.perf_counter() - started
        self.commits += 1
        self._observe(batch, result, elapsed)
        self._update_lag(consumer)

    async def _commit_kafka(self, consumer: AIOKafkaConsumer, held: Offsets) -> None:
        """Mirror the table's offsets into the group, for lag tooling; failure is harmless."""
        assigned = consumer.assignment()
        offsets = {
            tp: offset
            for (topic, partition), offset in held.items()
            if (tp := TopicPartition(topic, partition)) in assigned
        }
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:
            # A rebalance took the partitions away; the table already holds the truth.
            log.warning("bronze.kafka_commit_failed", error=repr(exc))

    def _observe(self, batch: Batch, result: CommitResult, elapsed: float) -> None:
        ev, rj = result.events, result.rejects
        metrics.ROWS_COMMITTED.labels(table=self._bronze.table).inc(ev.rows)
        metrics.RECORDS_REPLAYED.labels(table=self._bronze.table).inc(ev.replayed)
        if rj is not None:
            metrics.ROWS_COMMITTED.labels(table=self._bronze.rejects_table).inc(rj.rows)
            metrics.RECORDS_REPLAYED.labels(table=self._bronze.rejects_table).inc(rj.replayed)
        metrics.COMMIT_LATENCY.observe(elapsed)
        metrics.COMMIT_SIZE.observe(batch.records)
        metrics.LAST_COMMIT.set(time.time())
        log.info(
            "bronze.commit",
            records=batch.records,
            rows=ev.rows,
            rejects=rj.rows if rj else 0,
            duplicates=sum(batch.duplicates.values()),
            replayed=ev.replayed + (rj.replayed if rj else 0),
            snapshot_id=ev.snapshot_id,
            attempts=ev.attempts,
            seconds=round(elapsed, 3),
            offsets={p: o for (t, p), o in sorted(ev.offsets.items()) if t == batch.topic},
        )

    def _update_dedup_metrics(self) -> None:
        metrics.DEDUP_IDS.set(sum(len(recent) for recent in self._recent.values()))
        for recent in self._recent.values():
            if early := recent.take_evicted_early():
                metrics.DEDUP_EVICTED_EARLY.inc(early)

    def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            end = consumer.last_stable_offset(tp)
            if end is None:
                end = consumer.highwater(tp)
            if end is None:
                continue
            held = self._held.get((tp.topic, tp.partition), 0)
            metrics.LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, end - held))

    # -- rebalancing -------------------------------------------------------------------------

    async def _on_assigned(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        held = await asyncio.to_thread(self._read_table_offsets)
        self._held = held
        self.partitions = frozenset(tp.partition for tp in assigned)
        bronze = self._bronze
        for tp in assigned:
            # A partition the table has never seen starts at offset 0; if retention removed that,
            # auto_offset_reset="earliest" moves it to the oldest record still in Kafka.
            offset = held.get((tp.topic, tp.partition), 0)
            start = offset
            if bronze.dedup_max_ids > 0:
                # Re-read what the dedup memory held before (a restart must not forget the ids
                # of the last window); those records feed the memory only, never the table.
                self._recent[tp.partition] = RecentIds(
                    max_ids=bronze.dedup_max_ids, window_ms=int(bronze.dedup_window_s * 1000)
                )
                start = max(0, offset - bronze.dedup_max_ids)
            self._warm_until[tp.partition] = offset
            consumer.seek(tp, start)
            self._positions.reset(tp.partition, start)
        # Ready from the first assignment on (an empty one too: it means the group has more
        # writers than partitions); a later rebalance does not make it unready.
        metrics.READY.set(1)
        log.info(
            "bronze.assigned",
            partitions={
                tp.partition: held.get((tp.topic, tp.partition), 0)
                for tp in sorted(assigned, key=lambda tp: tp.partition)
            },
        )

    def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        ours = [tp.partition for tp in revoked if tp.topic == self._bronze.topic]
        self._batch.drop_partitions(ours)
        for partition in ours:
            self._positions.forget(partition)
            self._recent.pop(partition, None)
            self._warm_until.pop(partition, None)
        self.partitions = self.partitions.difference(ours)
        for partition in ours:
            with contextlib.suppress(KeyError):  # never set: no fetch happened yet
                metrics.LAG.remove(self._bronze.topic, str(partition))
        if ours:  # aiokafka also calls this, with nothing, before the first assignment
            log.info("bronze.revoked", partitions=sorted(ours))

    def _read_table_offsets(self) -> Offsets:
        # A fresh Table object: the committing thread may be refreshing its own at this moment.
        assert self._catalog is not None
        table = self._catalog.load_table(table_identifier(self._settings.lake, self._bronze.table))
        return table_offsets(table)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, writer: BronzeWriter, consumer: AIOKafkaConsumer) -> None:
        self._writer = writer
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._writer._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._writer._on_assigned(self._consumer, assigned)
