"""The Faust app: the events topic folded in batches into a changelog-backed table of member state.

    job = FeatureJob(settings, catalog=..., redis_store=..., cassandra_store=...,
                     trending_store=..., metrics=...)
    app = create_app(settings, job)       # built in main(), never at import time
    faust.Worker(app).execute_from_commandline()

The app's consumer (:class:`recsys_features.batch_consumer.BatchingConsumer`) hands the events
over one fetch at a time to :class:`EventBatches`: the batch is folded
(:meth:`FeatureJob.fold`, nothing written yet), its changelog, late, session and dead-letter
records are produced and acknowledged, and only then committed to the table and queued for the
stores (:meth:`FeatureJob.commit`). A batch whose fold or produce raises something other than a
broker outage is split in halves until the record at fault is alone; it goes to the dead-letter
topic and the rest goes on, so no record can stop the job or crash it in a loop. Store writes
are coalesced per member and flushed by timers. Why this layout and what it guarantees:
docs/features.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import faust
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from faust.transport.drivers.aiokafka import Producer as FaustKafkaProducer
from faust.types import TP
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential
from tenacity.stop import stop_base

from recsys.clients.kafka import send_batches
from recsys.config import Settings
from recsys.log import get_logger
from recsys_features.batch_consumer import BatchingConsumer, BatchingTransport
from recsys_features.catalog import CassandraCatalog
from recsys_features.fold import BatchResult, DeadLetter, Record
from recsys_features.job import ChangelogRecord, FeatureJob
from recsys_features.store_writer import StoreWriter

__all__ = ["TABLE_NAME", "EventBatches", "create_app", "data_dir"]

log = get_logger(__name__)

TABLE_NAME = "member_state"
# The changelog is compacted; small segments let the broker compact it while the job runs, so
# a recovering worker reads about one record per member instead of every state it ever wrote.
CHANGELOG_CONFIG = {
    "segment.ms": str(10 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.2",
    "delete.retention.ms": str(24 * 3600 * 1000),  # tombstones of evicted members
}
REVOKE_DRAIN_TIMEOUT_S = 10.0


def data_dir(settings: Settings) -> Path:
    base = settings.features.data_dir or settings.infra.state_dir / "features"
    return base / settings.features.app_id


def is_broker_outage(exc: BaseException) -> bool:
    """Errors that mean "Kafka is not answering right now": wait and try again."""
    if isinstance(exc, KafkaError):
        return bool(exc.retriable) or isinstance(exc, KafkaTimeoutError | KafkaConnectionError)
    return isinstance(exc, TimeoutError | ConnectionError)


class EventBatches:
    """What the batching consumer does with the events topic (see the module docstring)."""

    def __init__(self, app: Any, table: Any, job: FeatureJob, settings: Settings) -> None:
        self.app = app
        self.table = table
        self.job = job
        self.fs = settings.features
        self.topics = frozenset([self.fs.events_topic])

    # -- the consumer's hooks -------------------------------------------------------------------

    async def handle(self, batches: Mapping[TP, Sequence[Any]]) -> None:
        records = [
            Record(tp.partition, r.value or b"", r.offset, r.key)
            for tp, tp_records in batches.items()
            for r in tp_records
        ]
        self.job.metrics.batch_events.observe(len(records))
        async with self.job.lock:
            with self.job.metrics.work_seconds.labels(task="batch").time():
                await self._fold_or_split(records)

    def admit(self) -> bool:
        return self.job.has_room()

    def commit_floor(self, tp: TP) -> int | None:
        return self.job.commit_floor(tp.partition)

    async def before_revoke(self, revoked: set[TP]) -> None:
        """Write what is pending for partitions moving away, so the commit that follows covers
        it (if a store is down, the commit stays behind and the new owner writes them)."""
        gone = {tp.partition for tp in revoked if tp.topic in self.topics}
        try:
            async with asyncio.timeout(REVOKE_DRAIN_TIMEOUT_S):
                for writer in self.job.writers:
                    await writer.drain(gone)
        except TimeoutError:
            log.warning("revoke_drain_timed_out", partitions=sorted(gone))

    # -- one batch ------------------------------------------------------------------------------

    async def _fold_or_split(self, records: Sequence[Record], *, top: bool = True) -> None:
        job, data = self.job, self.table.data
        try:
            result = job.fold(records, data)
            await self.publish(result)
            job.commit(result, data)
        except Exception as exc:
            job.abort()
            if self.app.should_stop or is_broker_outage(exc):
                raise  # not this batch's fault: it is fetched again
            if top:  # the traceback once; the halves say only what they found
                log.exception("batch_failed", records=len(records))
            if len(records) > 1:
                half = len(records) // 2
                await self._fold_or_split(records[:half], top=False)
                await self._fold_or_split(records[half:], top=False)
                return
            log.error("record_dead_lettered", offset=records[0].offset, error=repr(exc))
            dead = BatchResult(dead=[DeadLetter(records[0], f"failed: {exc!r}")])
            dead.outcomes["failed"] += 1
            await self.publish(dead)
            job.commit(dead, data)

    async def publish(self, result: BatchResult) -> None:
        changelog = [ChangelogRecord(u.key, u.partition, u.state) for u in result.changed]
        await self.produce(changelog, late=result.late, sessions=result.sessions, dead=result.dead)

    async def produce(
        self,
        changelog: Iterable[ChangelogRecord],
        *,
        late: Iterable[tuple[bytes, bytes]] = (),
        sessions: Iterable[tuple[bytes, bytes]] = (),
        dead: Iterable[DeadLetter] = (),
    ) -> None:
        """Produce and wait for the broker's acknowledgements, retrying while it is down.

        One record per changed member (not per event), each to its member's own partition of
        the changelog, in one batch per partition. Waiting for the acknowledgements before the
        consumer may commit means a committed offset never runs ahead of the changelog (Faust
        also flushes the producer before committing).
        """
        changelog, late, sessions, dead = list(changelog), list(late), list(sessions), list(dead)
        if not (changelog or late or sessions or dead):
            return
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_broker_outage),
            wait=wait_exponential(multiplier=0.2, max=5),
            stop=_StopWhen(lambda: bool(self.app.should_stop)),
            before_sleep=_log_retry,
            reraise=True,
        ):
            with attempt:
                await self._produce_once(changelog, late, sessions, dead)

    async def _produce_once(
        self,
        changelog: list[ChangelogRecord],
        late: list[tuple[bytes, bytes]],
        sessions: list[tuple[bytes, bytes]],
        dead: list[DeadLetter],
    ) -> None:
        topic = self.table.changelog_topic.get_topic_name()
        by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
        for record in changelog:
            by_partition.setdefault((topic, record.partition), []).append(
                (record.key, record.state)
            )
        # Faust's own aiokafka producer (its flush before a commit covers these batches).
        producer = cast(FaustKafkaProducer, self.app.producer)._ensure_producer()
        pending: list[Awaitable[Any]] = [*await send_batches(producer, by_partition)]
        send = self.app.producer.send
        for name, records in ((self.fs.late_topic, late), (self.fs.sessions_topic, sessions)):
            pending += [await send(name, k, v, None, None, None) for k, v in records]
        for letter in dead:
            origin = letter.record
            headers = [
                ("reason", letter.reason.encode()),
                ("source.topic", self.fs.events_topic.encode()),
                ("source.partition", str(origin.partition).encode()),
                ("source.offset", str(origin.offset).encode()),
                ("worker", self.fs.app_id.encode()),
                ("failed_at_ms", str(time.time_ns() // 1_000_000).encode()),
            ]
            pending.append(
                await send(self.fs.dead_letter_topic, origin.key, origin.value, None, None, headers)
            )
        if pending:
            await asyncio.gather(*pending)


class _StopWhen(stop_base):
    """Stop retrying once ``predicate()`` is true (the worker is stopping)."""

    def __init__(self, predicate: Callable[[], bool]) -> None:
        self._predicate = predicate

    def __call__(self, retry_state: Any) -> bool:
        return self._predicate()


def _log_retry(state: Any) -> None:
    log.warning(
        "kafka_unavailable_retrying",
        attempt=state.attempt_number,
        error=repr(state.outcome.exception()) if state.outcome else None,
    )


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
        consumer_group_instance_id=fs.instance_id or None,
    )
    # acks=False: Faust does not track the events' messages; the batching consumer commits
    # the position after each handled batch itself.
    events = app.topic(fs.events_topic, key_serializer="raw", value_serializer="raw", acks=False)
    # bytes keys and values: the changelog stores the encoded UserState as is (raw codec).
    table = app.Table(
        TABLE_NAME,
        default=None,
        partitions=fs.partitions,
        key_type=bytes,
        value_type=bytes,
        extra_topic_configs=CHANGELOG_CONFIG,
    )
    sink = EventBatches(app, table, job, settings)
    app.transport = BatchingTransport(
        app.conf.broker_consumer, app, sink=sink, fetch_max_wait_ms=fs.fetch_max_wait_ms
    )
    app.topics.add(events)  # subscribe; no agent iterates it, the consumer hands batches over
    metrics = job.metrics

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
    async def housekeeping() -> None:
        # Under the job's lock: a batch in flight is either all in the table or not at all.
        async with job.lock:
            started = time.perf_counter()
            closes = job.close_idle_sessions(table.data)
            evicted = job.evict_silent_members(table.data)
            folded = time.perf_counter()
            await sink.produce(
                [ChangelogRecord(c.key, c.partition, c.state) for c in closes] + evicted,
                sessions=[(c.key, c.summary) for c in closes],
            )
            done = time.perf_counter()
        metrics.work_seconds.labels(task="housekeeping").observe(done - started)
        if done - started > 0.25:
            log.info(
                "housekeeping_slow",
                sessions_closed=len(closes),
                evicted=len(evicted),
                state_s=round(folded - started, 3),
                produce_s=round(done - folded, 3),
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
            try:
                await asyncio.get_running_loop().run_in_executor(None, catalog.load)
            except Exception as exc:  # keep the catalog we have; the next tick tries again
                log.warning("catalog_refresh_failed", error=repr(exc))

    async def on_recovered() -> None:
        # Rebuild the indexes from the states of the partitions we own and repair states that
        # hold events from beyond the skew bound; lost store writes are re-delivered instead.
        assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == fs.events_topic}
        async with job.lock:
            recovered = job.recover(table.data, assigned)
            await sink.produce(recovered.healed)
        metrics.ready.set(1)
        log.info(
            "table_recovered",
            members=recovered.members,
            healed=len(recovered.healed),
            partitions=sorted(assigned),
        )

    table.on_recover(on_recovered)

    async def on_revoked(_sender: Any, *args: Any, signal: Any, **_: Any) -> None:
        revoked: set[Any] = args[0]
        gone = {tp.partition for tp in revoked if tp.topic == fs.events_topic}
        await job.flush_trending(gone)
        async with job.lock:
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
