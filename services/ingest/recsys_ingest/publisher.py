"""Kafka side of the ingest service: produce a request's records and wait until all are acked.

    publisher = EventPublisher(settings)
    await publisher.start()                # never raises: connects in the background if need be
    await publisher.publish(records)       # returns once Kafka acked every record, else raises
    await publisher.stop()                 # flushes what is pending (bounded by a timeout)

The producer is idempotent with ``acks=all`` (:func:`recsys.clients.kafka_producer`) and records
are keyed by user_id, so a member's events stay in order in one partition and a retried send is
never doubled. ``publish`` raises :class:`KafkaUnavailable` (the route answers 503) when Kafka is
unreachable, does not ack within ``produce_timeout_s`` or fails a batch, or when a partition the
records go to already has ``max_waiting_batches`` batches waiting (then nothing of the request is
queued). Records of a request that timed out or failed may still arrive later; the client resends
the batch and the stream job drops repeated event_ids. Nothing is reported accepted before Kafka
acknowledged it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError

from recsys.clients.kafka import kafka_producer
from recsys.config import Settings
from recsys.log import get_logger
from recsys_ingest.batching import QueueFull, RecordBatcher, RecordTooLarge

__all__ = ["EventPublisher", "KafkaUnavailable", "ProducerFactory"]

log = get_logger(__name__)

ProducerFactory = Callable[[], AIOKafkaProducer]

_HEALTH_TIMEOUT_S: Final = 2.0
_RECONNECT_MAX_S: Final = 5.0
# Publishes may time out for this many produce timeouts in a row before the producer is replaced.
STALL_TIMEOUTS: Final = 3


class KafkaUnavailable(RuntimeError):
    """Kafka did not acknowledge every record of a request; answer 503 and let the client retry."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # "not_ready", "queue_full", "timeout" or "error" (a metric label)


class EventPublisher:
    def __init__(
        self, settings: Settings, *, producer_factory: ProducerFactory | None = None
    ) -> None:
        self._settings = settings
        self._topic = settings.ingest.topic
        self._timeout_s = settings.ingest.produce_timeout_s
        self._health_interval_s = settings.ingest.health_interval_s
        self._max_waiting = settings.ingest.max_waiting_batches
        self._factory = producer_factory or self._default_factory
        self._producer: AIOKafkaProducer | None = None
        self._batcher: RecordBatcher | None = None
        self._loops: set[asyncio.Task[None]] = set()  # connect and health loops
        self._closing: set[asyncio.Task[None]] = set()  # replaced producers being closed
        self._connect_task: asyncio.Task[None] | None = None
        self._reachable = False
        self._detail = "not connected yet"
        self._stopping = False
        self._stalled_since: float | None = None  # first unacknowledged publish since an ack
        self.awaiting = 0  # publish calls whose records are queued, waiting for acknowledgements

    @property
    def topic(self) -> str:
        return self._topic

    def most_waiting_batches(self) -> int:
        """Batches waiting for the producer in the fullest partition (0 when not connected)."""
        batcher = self._batcher
        return 0 if batcher is None else batcher.most_waiting()

    def _default_factory(self) -> AIOKafkaProducer:
        return kafka_producer(
            self._settings.kafka,
            client_id=f"{self._settings.kafka.client_id}-ingest",
            # RecordBatcher hands over closed batches, which never linger.
            linger_ms=0,
            max_batch_size=self._settings.ingest.producer_batch_bytes,
        )

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect now if Kafka answers, else keep trying in the background (readiness fails)."""
        self._connect_task = self._spawn(self._connect_loop())
        self._spawn(self._health_loop())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._connect_task), self._timeout_s)

    async def stop(self) -> None:
        """Send what is pending and close (each step bounded by produce_timeout_s)."""
        self._stopping = True
        for task in list(self._loops):
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        producer, batcher = self._producer, self._batcher
        self._producer = self._batcher = None
        if producer is not None and batcher is not None:
            await batcher.drain(self._timeout_s)
            await _close(producer, batcher, self._timeout_s, KafkaError("shutting down"))
        await asyncio.gather(*self._closing, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._loops.add(task)
        task.add_done_callback(self._loops.discard)
        return task

    async def _connect_loop(self) -> None:
        delay = 0.2
        while self._producer is None and not self._stopping:
            producer = self._factory()
            try:
                await producer.start()
                # Load the topic's partitions now: a missing topic fails here, not in a request.
                await producer.partitions_for(self._topic)
            except asyncio.CancelledError:  # stop() while connecting
                await _stop_quietly(producer)
                raise
            except Exception as exc:  # KafkaError, OSError, ...: keep trying, readiness says why
                self._detail = f"cannot connect to Kafka: {exc!r}"
                log.warning("kafka connect failed", error=repr(exc), retry_in_s=delay)
                await _stop_quietly(producer)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)
                continue
            self._batcher = RecordBatcher(producer, self._topic, max_waiting=self._max_waiting)
            self._producer = producer
            self._reachable, self._detail = True, "ok"
            log.info("kafka producer started", topic=self._topic)

    async def _health_loop(self) -> None:
        """Ask the broker for metadata every health_interval_s; readiness and fast 503s read it."""
        while True:
            await asyncio.sleep(self._health_interval_s)
            producer = self._producer
            if producer is None:
                self._reachable = False
                continue
            if _sender_died(producer):
                self._reset_producer(KafkaError("the producer's sender task stopped"))
                continue
            try:
                metadata = await asyncio.wait_for(
                    producer.client.fetch_all_metadata(), _HEALTH_TIMEOUT_S
                )
            except (KafkaError, OSError, TimeoutError) as exc:
                if self._reachable:
                    log.warning("kafka unreachable", error=repr(exc))
                self._reachable, self._detail = False, f"Kafka unreachable: {exc!r}"
                self._stalled_since = None  # a stall counts only while the broker answers
                continue
            if metadata.partitions_for_topic(self._topic) is None:
                self._reachable, self._detail = False, f"topic {self._topic} does not exist"
                continue
            if not self._reachable:
                log.info("kafka reachable again")
            self._reachable, self._detail = True, "ok"

    def _reset_producer(self, reason: BaseException) -> None:
        """Replace a producer whose idempotent sequence state a failed batch may have broken."""
        producer, batcher = self._producer, self._batcher
        self._producer = self._batcher = None
        if producer is None or batcher is None or self._stopping:
            return
        log.warning("replacing the kafka producer after a failed batch", error=repr(reason))
        self._reachable, self._detail = False, f"producer reset after {reason!r}"
        closing = asyncio.create_task(_close(producer, batcher, self._timeout_s, reason))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        if self._connect_task is None or self._connect_task.done():
            self._connect_task = self._spawn(self._connect_loop())

    # --- the request path ----------------------------------------------------------------------

    @property
    def ready(self) -> tuple[bool, str]:
        """(ready, why not): a started producer, and the broker answered its last health probe."""
        if self._stopping:
            return False, "shutting down"
        return self._producer is not None and self._reachable, self._detail

    async def publish(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Produce every (key, value) in order and return once Kafka acked all of them."""
        batcher = self._batcher
        if batcher is None or not self._reachable or self._stopping:
            raise KafkaUnavailable(self._detail, "not_ready")
        partitions = batcher.partitions()
        if partitions is None:
            raise KafkaUnavailable(f"no partitions known for topic {self._topic}", "not_ready")
        try:
            acks = batcher.add(records, partitions)
        except QueueFull as exc:
            raise KafkaUnavailable(f"Kafka is not keeping up: {exc}", "queue_full") from exc
        except (KafkaError, RecordTooLarge) as exc:
            raise KafkaUnavailable(f"cannot queue the records: {exc!r}", "error") from exc
        # asyncio.wait never cancels the acks: other requests may share them.
        self.awaiting += 1
        try:
            _, pending = await asyncio.wait(acks, timeout=self._timeout_s)
        finally:
            self.awaiting -= 1
        failures = [f for a in acks if a.done() and (f := a.exception()) is not None]
        for failure in failures:
            if not isinstance(failure, KafkaTimeoutError):  # the batch failed for good
                if batcher is self._batcher:
                    self._reset_producer(failure)
                raise KafkaUnavailable(f"Kafka failed a batch: {failure!r}", "error") from failure
        if pending or failures:  # no ack in time, or the producer's queue did not move
            self._note_stall(batcher)
            raise KafkaUnavailable(
                f"Kafka did not acknowledge within {self._timeout_s:g} s", "timeout"
            )
        self._stalled_since = None

    def _note_stall(self, batcher: RecordBatcher) -> None:
        """Replace a producer that acknowledged nothing for a while though the broker answers.

        Covers failures aiokafka does not report, e.g. a batch retried forever that holds up its
        partition; an overloaded broker merely answers 503 for a while first.
        """
        now = time.monotonic()
        if self._stalled_since is None:
            self._stalled_since = now
            return
        stalled_s = now - self._stalled_since
        if stalled_s > STALL_TIMEOUTS * self._timeout_s and batcher is self._batcher:
            self._stalled_since = None
            self._reset_producer(KafkaTimeoutError(f"no acknowledgement for {stalled_s:.0f} s"))


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    """Close a producer that never finished starting."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), 1.0)


def _sender_died(producer: AIOKafkaProducer) -> bool:
    # aiokafka's sender task exits for good on OutOfOrderSequenceNumber and ProducerFenced; the
    # producer then accepts records it will never send.
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return task is not None and task.done()


async def _close(
    producer: AIOKafkaProducer, batcher: RecordBatcher, timeout_s: float, reason: BaseException
) -> None:
    """Close a producer; what Kafka did not ack within ``timeout_s`` is dropped (got a 503)."""
    await batcher.close(reason)
    try:
        await asyncio.wait_for(producer.flush(), timeout_s)
    except TimeoutError:
        log.warning(
            "kafka flush timed out; dropping unacknowledged records (their clients got 503)"
        )
        # An idempotent batch is retried forever; stop the sender so stop() can return.
        task = getattr(getattr(producer, "_sender", None), "sender_task", None)
        if task is not None:
            task.cancel()
    except Exception as exc:
        log.debug("kafka flush failed", error=repr(exc))
    try:
        await asyncio.wait_for(producer.stop(), timeout_s)
    except Exception as exc:
        log.warning("kafka producer did not stop cleanly", error=repr(exc))
