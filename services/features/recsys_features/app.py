"""The Faust app: one agent over the events topic, one changelog-backed table of member state.

    job = FeatureJob(settings, catalog=..., redis_store=..., cassandra_store=...)
    app = create_app(settings, job)       # built in main(), never at import time
    faust.Worker(app).execute_from_commandline()

Per event the agent decodes the protobuf, folds it into the member's :class:`UserState` (read
from and written back to the table ``member_state``, whose changelog topic makes it recoverable)
and marks the member dirty. A timer writes dirty members' features to Redis and Cassandra in
one batch per store. Why this layout and what it guarantees: docs/features.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from google.protobuf.message import DecodeError

from recsys.config import Settings
from recsys.events.v1 import events_pb2
from recsys.log import get_logger
from recsys_features.cassandra_store import CassandraFeatureStore
from recsys_features.catalog import CassandraCatalog, Catalog
from recsys_features.metrics import FeatureMetrics
from recsys_features.redis_store import RedisFeatureStore
from recsys_features.snapshot import FeatureSnapshot
from recsys_features.state import Applied, UserState

__all__ = ["TABLE_NAME", "FeatureJob", "create_app", "data_dir"]

log = get_logger(__name__)

TABLE_NAME = "member_state"


def data_dir(settings: Settings) -> Path:
    base = settings.features.data_dir or settings.infra.state_dir / "features"
    return base / settings.features.app_id


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class FeatureJob:
    """The job's runtime pieces and its per-event and per-flush logic (Faust-agnostic)."""

    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Catalog,
        redis_store: RedisFeatureStore,
        cassandra_store: CassandraFeatureStore,
        metrics: FeatureMetrics,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.redis_store = redis_store
        self.cassandra_store = cassandra_store
        self.metrics = metrics
        self.grace_ms = int(settings.features.grace_s * 1000)
        self.dedup_ms = int(settings.features.dedup_window_s * 1000)
        self.partitions = settings.features.partitions
        self.dirty: dict[bytes, int] = {}  # member key -> partition, awaiting a store write
        self.positions: dict[int, int] = {}  # partition -> next offset to process
        self._flush_lock = asyncio.Lock()

    def partition_of(self, key: bytes) -> int:
        """The partition Kafka's default partitioner gives the key (the producer's choice)."""
        return (int(murmur2(key)) & 0x7FFFFFFF) % self.partitions

    def mark_dirty(self, keys: Iterable[bytes]) -> None:
        for key in keys:
            self.dirty[key] = self.partition_of(key)

    async def flush(self, table: Any, *, partitions: set[int] | None = None) -> int:
        """Write the dirty members (of ``partitions``, default all) to both stores."""
        async with self._flush_lock:
            keys = [k for k, p in self.dirty.items() if partitions is None or p in partitions]
            if not keys:
                return 0
            batch = keys[: self.settings.features.flush_max_members]
            # Taken out before the first await: an event processed during the write marks its
            # member dirty again, and the next flush writes the newer state.
            taken = {key: self.dirty.pop(key) for key in batch}
            snapshots: list[FeatureSnapshot] = []
            for key in batch:
                raw = table.get(key)
                if raw is None:
                    continue
                state = UserState.decode(raw)
                snapshots.append(
                    FeatureSnapshot(key.decode(), state.watermark_ms, state.features())
                )
            written_at = _now_ms()
            try:
                await asyncio.gather(
                    self._timed(
                        "redis", self.redis_store.write(snapshots, written_at_ms=written_at)
                    ),
                    self._timed(
                        "cassandra",
                        self.cassandra_store.write(snapshots, written_at_ms=written_at),
                    ),
                )
            except Exception as exc:  # put them back; the next tick retries
                log.warning("store_write_failed", error=repr(exc), members=len(batch))
                for key, partition in taken.items():
                    self.dirty.setdefault(key, partition)
                return 0
            done = _now_ms()
            for snap in snapshots:
                lag_s = max(0.0, (done - snap.event_time_ms) / 1000)
                self.metrics.freshness.labels(store="redis").observe(lag_s)
                self.metrics.freshness.labels(store="cassandra").observe(lag_s)
            return len(snapshots)

    async def _timed(self, store: str, write: Any) -> None:
        started = time.perf_counter()
        await write
        self.metrics.store_write.labels(store=store).observe(time.perf_counter() - started)


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
    )
    events = app.topic(fs.events_topic, key_serializer="raw", value_serializer="raw")
    late = app.topic(fs.late_topic, key_serializer="raw", value_serializer="raw")
    sessions = app.topic(fs.sessions_topic, key_serializer="raw", value_serializer="raw")
    # bytes keys and values: the changelog stores the encoded UserState as is (raw codec).
    table = app.Table(
        TABLE_NAME, default=None, partitions=fs.partitions, key_type=bytes, value_type=bytes
    )
    metrics = job.metrics

    @app.agent(events)
    async def process(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            job.positions[message.partition] = message.offset + 1
            raw: bytes = event.value
            try:
                ev = events_pb2.Event.FromString(raw)
            except DecodeError:
                metrics.events.labels(outcome="invalid").inc()
                log.warning("undecodable_event", partition=message.partition, offset=message.offset)
                continue
            if not ev.user_id or not ev.event_id:
                metrics.events.labels(outcome="invalid").inc()
                continue
            key = ev.user_id.encode()
            stored = table.get(key)
            state = UserState.decode(stored) if stored is not None else UserState()
            outcome = state.apply(ev, job.catalog, grace_ms=job.grace_ms, dedup_ms=job.dedup_ms)
            metrics.events.labels(outcome=outcome.result.value).inc()
            if outcome.result is Applied.DUPLICATE:
                metrics.duplicates.inc()
                continue
            if outcome.result is Applied.LATE:
                metrics.late.inc()
                await late.send(key=key, value=raw)
                continue
            table[key] = state.encode()
            job.dirty[key] = message.partition
            if outcome.closed_session is not None:
                metrics.sessions.inc()
                await sessions.send(key=key, value=outcome.closed_session.to_json())

    @app.timer(fs.flush_interval_s)  # type: ignore[untyped-decorator]
    async def flush_stores() -> None:
        while await job.flush(table) >= fs.flush_max_members:
            pass

    @app.timer(5.0)  # type: ignore[untyped-decorator]
    async def report_lag() -> None:
        consumer = app.consumer
        for tp in consumer.assignment():
            if tp.topic != fs.events_topic:
                continue
            position = job.positions.get(tp.partition)
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
        owned = [k for k in list(table.keys()) if job.partition_of(k) in assigned]
        job.mark_dirty(owned)
        log.info("table_recovered", members=len(owned), partitions=sorted(assigned))

    table.on_recover(rematerialize)

    async def on_revoked(_sender: Any, *args: Any, signal: Any, **_: Any) -> None:
        revoked: set[Any] = args[0]
        # Write what we hold for partitions moving away before their new owner starts.
        gone = {tp.partition for tp in revoked if tp.topic == fs.events_topic}
        while await job.flush(table, partitions=gone) > 0:
            pass
        for key in [k for k, p in job.dirty.items() if p in gone]:
            del job.dirty[key]

    # mode types receivers as a union mypy cannot match an async def against.
    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
    return app
