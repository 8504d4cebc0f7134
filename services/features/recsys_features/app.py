"""The Faust app: the events topic folded in batches into a changelog-backed table of member state.

    job = FeatureJob(settings, catalog=..., redis_store=..., cassandra_store=...,
                     trending_store=..., metrics=...)
    app = create_app(settings, job)       # built in main(), never at import time
    faust.Worker(app).execute_from_commandline()

The app's consumer (:class:`recsys_features.batch_consumer.BatchingConsumer`) hands the events
over one fetch at a time. Each batch is folded into the members' states
(:func:`recsys_features.fold.fold_batch`: one decode/encode per member per batch); each changed
member's encoded state goes to the table's store and its changelog topic, late events and
closed sessions to their topics, and the broker acknowledges all of it before the consumer may
commit the batch's offsets. Store writes are coalesced per member and flushed by timers
(:class:`recsys_features.store_writer.StoreWriter`). Why this layout and what it
guarantees: docs/features.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import faust
from aiokafka.partitioner import murmur2
from cachetools import LRUCache
from faust.transport.drivers.aiokafka import Producer as FaustKafkaProducer
from faust.types import TP

from recsys.clients.kafka import send_batches
from recsys.config import Settings
from recsys.log import get_logger
from recsys_features.batch_consumer import BatchingConsumer, BatchingTransport
from recsys_features.cassandra_store import CassandraFeatureStore
from recsys_features.catalog import CassandraCatalog, Catalog
from recsys_features.fold import (
    BatchResult,
    Loader,
    MemberUpdate,
    Record,
    decoding,
    fold_batch,
)
from recsys_features.metrics import FeatureMetrics
from recsys_features.redis_store import RedisFeatureStore
from recsys_features.state import SESSION_GAP_MS, Applied, UserState
from recsys_features.store_writer import StoreWriter
from recsys_features.trending import PartitionTrending
from recsys_features.trending_store import TrendingStore

__all__ = ["TABLE_NAME", "FeatureJob", "create_app", "data_dir"]

log = get_logger(__name__)

TABLE_NAME = "member_state"


def data_dir(settings: Settings) -> Path:
    base = settings.features.data_dir or settings.infra.state_dir / "features"
    return base / settings.features.app_id


@dataclass(frozen=True, slots=True)
class SessionClose:
    key: bytes
    partition: int
    state: bytes  # the member's state with the session marked summarised
    summary: bytes  # SessionSummary JSON


class FeatureJob:
    """The job's runtime pieces and its per-batch logic (Faust-agnostic, testable)."""

    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Catalog,
        redis_store: RedisFeatureStore,
        cassandra_store: CassandraFeatureStore,
        trending_store: TrendingStore,
        metrics: FeatureMetrics,
    ) -> None:
        fs = settings.features
        self.settings = settings
        self.catalog = catalog
        self.metrics = metrics
        self.grace_ms = int(fs.grace_s * 1000)
        self.dedup_ms = int(fs.dedup_window_s * 1000)
        self.partitions = fs.partitions
        self.redis = StoreWriter(
            "redis", redis_store.write, max_members=fs.flush_max_members, metrics=metrics
        )
        self.cassandra = StoreWriter(
            "cassandra", cassandra_store.write, max_members=fs.flush_max_members, metrics=metrics
        )
        self.writers = (self.redis, self.cassandra)
        self.trending_store = trending_store
        self.trending: dict[int, PartitionTrending] = {}  # partition -> its members' counts
        # partition -> member -> last event time of its open, not yet summarised session
        self.open_sessions: dict[int, dict[bytes, int]] = {}
        self._states: LRUCache[bytes, UserState] | None = (
            LRUCache(maxsize=fs.state_cache_members) if fs.state_cache_members else None
        )

    def partition_of(self, key: bytes) -> int:
        """The partition Kafka's default partitioner gives the key (the producer's choice)."""
        return (int(murmur2(key)) & 0x7FFFFFFF) % self.partitions

    def fold(self, records: Iterable[Record], store: Any) -> BatchResult:
        """Fold ``records`` into the states in ``store`` (the table's storage, a mapping of
        encoded states), write the new states back there and queue the store writes."""
        result = fold_batch(
            records,
            load=self._loader(store),
            catalog=self.catalog,
            grace_ms=self.grace_ms,
            dedup_ms=self.dedup_ms,
        )
        for update in result.updates:
            store[update.key] = update.state
            self._remember(update.key, update.member)
            self._queue(update)
        for outcome, count in result.outcomes.items():
            self.metrics.events.labels(outcome=outcome).inc(count)
        if duplicates := result.outcomes.get(Applied.DUPLICATE.value):
            self.metrics.duplicates.inc(duplicates)
        if result.late:
            self.metrics.late.inc(len(result.late))
        if result.sessions:
            self.metrics.sessions.inc(len(result.sessions))
        return result

    def _loader(self, store: Any) -> Loader:
        # Decoded states of recently active members stay beside the table (bounded, LRU), so a
        # member's next batch skips the decode. The table's store stays the source of truth:
        # the cache only ever holds what was last written there by this worker, and it is
        # dropped for partitions handed over and on every recovery.
        decode = decoding(store.get)
        if self._states is None:
            return decode
        states = self._states

        def load(key: bytes) -> UserState | None:
            state = states.get(key)
            return decode(key) if state is None else state

        return load

    def _remember(self, key: bytes, state: UserState) -> None:
        if self._states is not None:
            self._states[key] = state

    def _queue(self, update: MemberUpdate) -> None:
        for writer in self.writers:
            writer.put(update.key, update.partition, update.snapshot)
        trending = self.trending.get(update.partition)
        if trending is None:
            trending = self.trending[update.partition] = PartitionTrending()
        trending.update(
            update.key,
            country=update.country,
            plays=update.plays,
            watermark_ms=update.snapshot.event_time_ms,
        )
        sessions = self.open_sessions.setdefault(update.partition, {})
        if update.idle_candidate_ms is None:
            sessions.pop(update.key, None)
        else:
            sessions[update.key] = update.idle_candidate_ms

    def close_idle_sessions(self, store: Any) -> list[SessionClose]:
        """Summarise sessions idle past the gap (plus grace) in their partition's event time.

        A partition's event time is its newest member event; an idle member's session closes
        once the partition has moved more than ``gap + grace`` past its last event, so an
        in-grace event of that member can no longer belong to it. The summary is marked in the
        member's state (written to ``store``), so the member's next event does not emit it
        again. Returns the closes for the changelog and the sessions topic.
        """
        closes: list[SessionClose] = []
        load = self._loader(store)
        for partition, sessions in self.open_sessions.items():
            trending = self.trending.get(partition)
            if trending is None:
                continue
            cutoff = trending.watermark_ms - SESSION_GAP_MS - self.grace_ms
            for key in [k for k, last in sessions.items() if last < cutoff]:
                del sessions[key]
                state = load(key)
                summary = state.close_idle(key.decode()) if state is not None else None
                if state is None or summary is None:
                    continue
                encoded = state.encode()
                store[key] = encoded
                self._remember(key, state)
                closes.append(SessionClose(key, partition, encoded, summary.to_json()))
        if closes:
            self.metrics.sessions.inc(len(closes))
        return closes

    def rematerialize(self, states: Iterable[tuple[bytes, bytes]]) -> int:
        """Queue store writes and rebuild the trending counts of recovered states (key,
        encoded state); returns how many."""
        if self._states is not None:
            self._states.clear()
        count = 0
        for key, raw in states:
            self._queue(MemberUpdate.of(key, self.partition_of(key), UserState.decode(raw)))
            count += 1
        return count

    async def flush_trending(self, partitions: set[int] | None = None) -> None:
        """Write the changed per-country counts of ``partitions`` (default all) to Redis."""
        for partition, trending in list(self.trending.items()):
            if partitions is not None and partition not in partitions:
                continue
            changed = trending.take_dirty()
            if not changed:
                continue
            try:
                await self.trending_store.write(partition, changed)
            except Exception as exc:  # the next tick retries with the then-current counts
                log.warning("trending_write_failed", error=repr(exc), partition=partition)
                trending.restore_dirty(changed)

    def forget(self, partitions: set[int]) -> None:
        """Drop what is held for partitions handed over to another worker."""
        for writer in self.writers:
            writer.drop(partitions)
        for partition in partitions:
            self.trending.pop(partition, None)
            self.open_sessions.pop(partition, None)
        if self._states is not None:
            for key in [k for k in self._states if self.partition_of(k) in partitions]:
                del self._states[key]


def create_app(settings: Settings, job: FeatureJob) -> Any:
    """The Faust app wired to ``job``; nothing connects until a worker starts it."""
    fs = settings.features
    brokers = [f"kafka://{hp.strip()}" for hp in settings.kafka.bootstrap_servers.split(",")]
    app = faust.App(
        fs.app_id,
        broker=brokers,
        store="memory://",
        datadir=str(data_dir(settings)),
        autodiscover=False,
        web_enabled=False,
        processing_guarantee="at_least_once",
        broker_commit_interval=fs.commit_interval_s,
        broker_session_timeout=fs.session_timeout_s,
        broker_heartbeat_interval=min(3.0, fs.session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        topic_partitions=fs.partitions,
        topic_replication_factor=settings.kafka.replication_factor,
        table_standby_replicas=0,
        producer_acks=-1,
        # A batch sends its changelog records without yielding, so they share requests
        # without a linger (which would add to every batch's wait for acknowledgements).
        producer_max_batch_size=1024 * 1024,
        # One fetch is one batch: at most batch_max_events, fewer when the worker keeps up.
        broker_max_poll_records=fs.batch_max_events,
    )
    # acks=False: Faust does not track the events' messages; the batching consumer commits
    # the position after each handled batch itself.
    events = app.topic(fs.events_topic, key_serializer="raw", value_serializer="raw", acks=False)
    # bytes keys and values: the changelog stores the encoded UserState as is (raw codec).
    table = app.Table(
        TABLE_NAME, default=None, partitions=fs.partitions, key_type=bytes, value_type=bytes
    )
    metrics = job.metrics

    async def produce(
        states: Iterable[tuple[bytes, bytes, int]],
        *,
        late: Iterable[tuple[bytes, bytes]] = (),
        sessions: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        # One record per changed member (not per event), each state (key, encoded state,
        # partition) to its member's own partition of the changelog, in one batch per
        # partition. Waiting for the broker's acknowledgements before the consumer may commit
        # the batch means a committed offset never runs ahead of the changelog (Faust also
        # flushes the producer before committing).
        changelog = table.changelog_topic.get_topic_name()
        by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = {}
        for key, state, partition in states:
            by_partition.setdefault((changelog, partition), []).append((key, state))
        # Faust's own aiokafka producer (its flush before a commit covers these batches).
        producer = cast(FaustKafkaProducer, app.producer)._ensure_producer()
        pending: list[Awaitable[Any]] = [*await send_batches(producer, by_partition)]
        send = app.producer.send
        for topic, records in ((fs.late_topic, late), (fs.sessions_topic, sessions)):
            pending += [await send(topic, k, v, None, None, None) for k, v in records]
        if pending:
            await asyncio.gather(*pending)

    async def publish(result: BatchResult) -> None:
        states = [(u.key, u.state, u.partition) for u in result.updates]
        await produce(states, late=result.late, sessions=result.sessions)

    async def handle(batches: Mapping[TP, Sequence[Any]]) -> None:
        records = []
        for tp, tp_records in batches.items():
            partition = tp.partition
            records += [Record(partition, record.value) for record in tp_records]
        metrics.batch_events.observe(len(records))
        await publish(job.fold(records, table.data))

    app.transport = BatchingTransport(
        app.conf.broker_consumer, app, topics=[events.get_topic_name()], handler=handle
    )
    app.topics.add(events)  # subscribe; no agent iterates it, the consumer hands batches over

    async def flush_while_full(writer: StoreWriter) -> None:
        while await writer.flush() >= fs.flush_max_members:
            pass

    @app.timer(fs.flush_interval_s)  # type: ignore[untyped-decorator]
    async def flush_redis() -> None:
        await flush_while_full(job.redis)

    @app.timer(fs.cassandra_flush_interval_s)  # type: ignore[untyped-decorator]
    async def flush_cassandra() -> None:
        await flush_while_full(job.cassandra)

    @app.timer(fs.trending_flush_interval_s)  # type: ignore[untyped-decorator]
    async def flush_trending() -> None:
        await job.flush_trending()

    @app.timer(fs.idle_session_check_s)  # type: ignore[untyped-decorator]
    async def close_idle_sessions() -> None:
        closes = job.close_idle_sessions(table.data)
        await produce(
            [(c.key, c.state, c.partition) for c in closes],
            sessions=[(c.key, c.summary) for c in closes],
        )

    @app.timer(5.0)  # type: ignore[untyped-decorator]
    async def report_lag() -> None:
        consumer = cast(BatchingConsumer, app.consumer)
        for tp in consumer.assignment():
            if tp.topic != fs.events_topic:
                continue
            position = consumer.handled_offset(tp)
            if position is None:
                continue
            # Typed int, but aiokafka answers None for a partition not fetched from yet.
            highwater: int | None = consumer.highwater(tp)
            if highwater is None:
                continue
            lag = max(0, highwater - position)
            metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(lag)

    if isinstance(job.catalog, CassandraCatalog):
        catalog = job.catalog

        @app.timer(fs.catalog_refresh_s)  # type: ignore[untyped-decorator]
        async def refresh_catalog() -> None:
            await asyncio.get_running_loop().run_in_executor(None, catalog.load)

    async def rematerialize() -> None:
        # After recovery the table may hold state whose store write was lost in a crash (the
        # offsets were committed, the flush was not): rewrite every member we now own.
        assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == fs.events_topic}
        owned = [(k, v) for k, v in list(table.data.items()) if job.partition_of(k) in assigned]
        count = job.rematerialize(owned)
        metrics.ready.set(1)
        log.info("table_recovered", members=count, partitions=sorted(assigned))

    table.on_recover(rematerialize)

    async def on_revoked(_sender: Any, *args: Any, signal: Any, **_: Any) -> None:
        revoked: set[Any] = args[0]
        # Write what we hold for partitions moving away before their new owner starts.
        gone = {tp.partition for tp in revoked if tp.topic == fs.events_topic}
        for writer in job.writers:
            await writer.drain(gone)
        await job.flush_trending(gone)
        job.forget(gone)

    async def on_shutdown(_sender: Any, **_: Any) -> None:
        # A graceful stop writes what the timers have not written yet.
        for writer in job.writers:
            await writer.drain()
        await job.flush_trending()

    # mode types receivers as a union mypy cannot match an async def against.
    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
    app.on_before_shutdown.connect(on_shutdown)  # type: ignore[arg-type]
    return app
