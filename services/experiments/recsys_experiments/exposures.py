"""Exposures, off the request path: every one to Kafka, the first of each member and experiment
durably to Cassandra (``INSERT ... IF NOT EXISTS``).

A call only puts its exposures on a bounded queue (``exposure_queue``); a background task sends
them. Kafka or Cassandra down, or slow, never slows an answer: the queue fills, and beyond its
bound new exposures are dropped and counted (``recsys_experiments_exposures_total{result=
"dropped"}``). A process remembers (LRU, ``recorded_members``) which first exposures it has
recorded, so Cassandra sees one lightweight transaction per member and experiment per process,
not one per call. On stop, what is queued is sent within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache
from prometheus_client import Counter

from recsys.clients.startup import connect_in_background, keep_trying
from recsys.experiments.v1 import experiments_pb2 as pb
from recsys.log import get_logger
from recsys_experiments.assignment import Assignments
from recsys_experiments.metrics import ASSIGNMENTS, EXPOSURES, FIRST_EXPOSURES

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

    from recsys.clients.cassandra import CassandraClient
    from recsys.config import Settings

__all__ = ["ExposureLog"]

log = get_logger(__name__)

_INSERT = (
    "INSERT INTO {ks}.experiment_exposures (user_id, experiment_id, layer, variant, bucket, "
    "config_version, first_exposed_at) VALUES (?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
)
_BATCH = 500  # exposures sent per round


# The counter's children by (experiment, variant), bound on first use: `.labels()` costs a lock
# and a lookup on every call, and the pairs are the configuration's, a bounded set.
_ASSIGNED: dict[tuple[str, str], Counter] = {}


def _assigned(experiment: str, variant: str) -> Counter:
    child = _ASSIGNED.get((experiment, variant))
    if child is None:
        child = _ASSIGNED[experiment, variant] = ASSIGNMENTS.labels(
            experiment=experiment, variant=variant
        )
    return child


class ExposureLog:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        size = settings.experiments.exposure_queue
        self._to_kafka: asyncio.Queue[pb.ExposureEvent] = asyncio.Queue(maxsize=size)
        self._to_cassandra: asyncio.Queue[pb.ExposureEvent] = asyncio.Queue(maxsize=size)
        # (member, experiment) pairs whose first exposure is written, or waiting to be.
        self._recorded: LRUCache[tuple[str, str], bool] = LRUCache(
            maxsize=settings.experiments.recorded_members
        )
        self._pending: set[tuple[str, str]] = set()
        self._producer: AIOKafkaProducer | None = None
        self._cassandra: CassandraClient | None = None
        self._connecting: list[asyncio.Task[Any]] = []
        self._kafka_ready = asyncio.Event()
        self._cassandra_ready = asyncio.Event()

    def record(self, user_id: str, result: Assignments) -> None:
        """Queue the call's exposures (never waits)."""
        now_ms = time.time_ns() // 1_000_000
        for a in result.assignments:
            _assigned(a.experiment_id, a.variant).inc()
            event = pb.ExposureEvent(
                user_id=user_id,
                experiment_id=a.experiment_id,
                layer=a.layer,
                variant=a.variant,
                bucket=a.bucket,
                config_version=result.config_version,
                exposed_at_ms=now_ms,
            )
            try:
                self._to_kafka.put_nowait(event)
            except asyncio.QueueFull:
                EXPOSURES.labels(result="dropped").inc()
            key = (user_id, a.experiment_id)
            if key in self._recorded or key in self._pending:
                continue
            try:
                self._to_cassandra.put_nowait(event)
            except asyncio.QueueFull:  # the member's next exposure tries again
                FIRST_EXPOSURES.labels(result="dropped").inc()
                continue
            self._pending.add(key)

    def start(self) -> None:
        """Connect Kafka and Cassandra in the background (each retried until it answers)."""
        self._connecting = [
            asyncio.create_task(self._connect_kafka()),
            asyncio.create_task(self._connect_cassandra()),
        ]

    async def _connect_kafka(self) -> None:
        from recsys.clients.kafka import started_producer

        settings = self._settings.kafka
        self._producer = await keep_trying(
            "kafka", lambda: started_producer(settings, client_id="recsys-experiments")
        )
        self._kafka_ready.set()

    async def _connect_cassandra(self) -> None:
        from recsys.clients.cassandra import connect_cassandra

        settings = self._settings.cassandra
        self._cassandra = await connect_in_background(
            "cassandra", lambda: connect_cassandra(settings)
        )
        self._cassandra_ready.set()

    async def run(self) -> None:
        """Send queued exposures until cancelled: Kafka and Cassandra each at their own pace."""
        await asyncio.gather(
            self._drain(self._to_kafka, self._kafka_ready, self._send),
            self._drain(self._to_cassandra, self._cassandra_ready, self._write_first),
        )

    async def _drain(
        self,
        queue: asyncio.Queue[pb.ExposureEvent],
        ready: asyncio.Event,
        handle: Callable[[Sequence[pb.ExposureEvent]], Awaitable[None]],
    ) -> None:
        await ready.wait()  # the queue holds (and bounds) what comes meanwhile
        while True:
            batch = [await queue.get()]
            while len(batch) < _BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            await handle(batch)

    async def _send(self, batch: Sequence[pb.ExposureEvent]) -> None:
        assert self._producer is not None
        topic = self._settings.experiments.exposures_topic
        sends = [
            await self._producer.send(topic, e.SerializeToString(), key=e.user_id.encode())
            for e in batch
        ]
        for outcome in await asyncio.gather(*sends, return_exceptions=True):
            failed = isinstance(outcome, BaseException)
            EXPOSURES.labels(result="failed" if failed else "sent").inc()

    async def _write_first(self, batch: Sequence[pb.ExposureEvent]) -> None:
        """One lightweight transaction per pair: the first write wins, later ones change
        nothing (so two processes, or a replay, keep the earliest exposure)."""
        assert self._cassandra is not None
        insert = _INSERT.format(ks=self._settings.cassandra.keyspace)
        for e in batch:
            key = (e.user_id, e.experiment_id)
            at = datetime.fromtimestamp(e.exposed_at_ms / 1000, UTC)
            row = (e.user_id, e.experiment_id, e.layer, e.variant, e.bucket, e.config_version, at)
            try:
                rows = await self._cassandra.execute(insert, row)
            except Exception as exc:  # the member's next exposure tries again
                FIRST_EXPOSURES.labels(result="failed").inc()
                log.warning("first exposure not written", error=repr(exc)[:200])
            else:
                applied = bool(rows and rows[0].get("[applied]"))
                FIRST_EXPOSURES.labels(result="written" if applied else "existing").inc()
                self._recorded[key] = True
            finally:
                self._pending.discard(key)

    async def close(self, *, timeout_s: float) -> None:
        """Send what is queued (within ``timeout_s``), then disconnect."""
        for task in self._connecting:
            task.cancel()
        flushes = []
        for queue, ready, handle in (
            (self._to_kafka, self._kafka_ready, self._send),
            (self._to_cassandra, self._cassandra_ready, self._write_first),
        ):
            pending = [queue.get_nowait() for _ in range(queue.qsize())]
            if pending and ready.is_set():
                flushes.append(handle(pending))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*flushes), timeout_s)
        if self._producer is not None:
            await self._producer.stop()
        if self._cassandra is not None:
            self._cassandra.close()
