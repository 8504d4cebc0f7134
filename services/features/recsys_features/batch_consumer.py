"""Faust's aiokafka consumer, handing the event topic's records over one fetch at a time.

Faust delivers every record through its conductor, a channel queue, the stream iterator and
per-message acks: about 160-240 µs of Python per record on this machine, the whole budget of a
5,000 events/s worker. The job folds events in batches anyway, so for the topics named in
``batch_topics`` this consumer skips that path: each fetch's records go straight to one call of
its sink's ``handle``, and the consumer itself remembers, per partition, the offset after the
last record whose batch was handled. That position is what it commits. Changelog records of a
partition being recovered are applied to the table's store a fetch at a time too
(:meth:`BatchingConsumer._recover`); anything else takes Faust's usual per-record path.

The sink also decides two things the consumer enforces: whether to take a batch at all
(``admit()``: false while a store's backlog is full, and the records fetched are put back, so the
partitions wait without leaving the group) and how far a commit may go (``commit_floor(tp)``:
the lowest offset whose member still waits for a store write).

Why committing a handled position is safe, and what happens around a rebalance:

- The handler returns only after the batch's changelog records are acknowledged, so a committed
  offset never runs ahead of the member states it produced; and a commit never passes the
  sink's floor, so it never runs ahead of the stores either.
- A batch is handled under a lock; a revocation takes the same lock, so it waits for the batch in
  flight, lets the sink write what is pending for the revoked partitions, and then commits what
  was handled for them before their new owner starts from that offset.
- Records fetched while a rebalance was under way are not handled. Those that come back after
  the flow stopped are put back (each partition seeks to its first such record); a batch that
  was waiting while a revocation went through is dropped, as Faust's recovery seeks every
  stream partition back to its committed offset before the flow resumes. Either way whoever
  owns the partition next fetches them again (records after a committed offset may be folded
  twice; the fold is idempotent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, cast

from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from recsys.log import get_logger

__all__ = ["BatchSink", "BatchingConsumer", "BatchingTransport"]

log = get_logger(__name__)

REVOKE_COMMIT_TIMEOUT_S = 10.0
BACKPRESSURE_WAIT_S = 0.25  # between fetches while the sink admits no batch


class BatchSink(Protocol):
    """What the consumer hands the batch topics to."""

    topics: frozenset[str]

    async def handle(self, batches: Mapping[TP, Sequence[Any]]) -> None:
        """Process one fetch's records (per partition, in offset order); return only once
        they are safe to commit."""

    def admit(self) -> bool:
        """Whether to take a batch now (false: put it back and wait)."""

    def commit_floor(self, tp: TP) -> int | None:
        """The highest offset a commit of ``tp`` may cover, if lower than the handled one."""

    async def before_revoke(self, revoked: set[TP]) -> None:
        """Called before the revoked partitions' final commit."""


class BatchingConsumer(aiokafka_driver.Consumer):
    """See the module docstring; its topics and handler come from its :class:`BatchingTransport`."""

    def __init__(self, transport: BatchingTransport, *args: Any, **kwargs: Any) -> None:
        super().__init__(transport, *args, **kwargs)
        self.sink = transport.sink
        self.batch_topics = transport.sink.topics
        self._handled: dict[TP, int] = {}  # partition -> offset after its last handled record
        self._batch_lock = asyncio.Lock()
        # Odd while a rebalance is under way; changes at its start and at its end.
        self._epoch = 0

    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    # -- rebalancing ------------------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        async with self._batch_lock:  # waits for the batch in flight
            self._epoch += 1 if self._epoch % 2 == 0 else 2
            await self.sink.before_revoke(revoked)
            await self._commit_handled(revoked)
            for tp in revoked:
                self._handled.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        await super().on_partitions_assigned(assigned, generation_id)
        if self._epoch % 2:
            self._epoch += 1

    async def _commit_handled(self, tps: Iterable[TP]) -> None:
        offsets = {tp: o for tp in tps if (o := self._new_offset(tp)) is not None}
        offsets = {tp: o for tp, o in offsets.items() if self._should_commit(tp, o)}
        if not offsets:
            return
        try:
            await asyncio.wait_for(self._commit(offsets), REVOKE_COMMIT_TIMEOUT_S)
        except Exception as exc:  # the new owner then folds these records again (idempotent)
            log.warning("revoke_commit_failed", error=repr(exc), partitions=len(offsets))
        else:
            self._committed_offset.update(offsets)

    def handled_offset(self, tp: TP) -> int | None:
        """The offset after the last handled record of ``tp`` (None before its first batch
        since it was assigned): what the next commit covers, and where consumer lag starts."""
        return self._handled.get(tp)

    # -- committing (Faust's commit timer and shutdown call these) --------------------------

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        yield from super()._filter_tps_with_pending_acks(topics)
        for tp in list(self._handled):
            if topics is None or tp in topics or tp.topic in topics:
                yield tp

    def _new_offset(self, tp: TP) -> int | None:
        if tp.topic in self.batch_topics:
            handled = self.handled_offset(tp)
            floor = self.sink.commit_floor(tp)
            return handled if handled is None or floor is None else min(handled, floor)
        return super()._new_offset(tp)

    # -- fetching -----------------------------------------------------------------------------

    async def _drain_messages(self, fetcher: Any) -> None:  # replaces Faust's per-record loop
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                epoch = self._epoch
                records, active = await self._wait_next_records(1.0)
                await asyncio.sleep(0)  # getmany can return at once, again and again
                if not records or self.should_stop:
                    continue
                if not self.flow_active:  # a rebalance began while fetching
                    await self._put_back(records, "flow stopped")
                    continue
                batches: dict[TP, Sequence[Any]] = {}
                for tp, tp_records in records.items():
                    if active is not None and tp not in active:  # paused while fetching
                        await self._put_back({tp: tp_records}, "partition paused")
                    elif tp.topic in self.batch_topics:
                        batches[tp] = tp_records
                    elif self._recovering(tp):
                        await self._recover(tp, tp_records)
                    else:
                        await self._deliver_each(tp, tp_records)
                if batches and not self.sink.admit():
                    await self._put_back(batches, "backpressure", quiet=True)
                    await asyncio.sleep(BACKPRESSURE_WAIT_S)
                elif batches:
                    await asyncio.shield(self._handle(epoch, batches))
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _handle(self, epoch: int, batches: dict[TP, Sequence[Any]]) -> None:
        async with self._batch_lock:
            if epoch != self._epoch or not self.flow_active:
                # Fetched (or waited for the lock) around a rebalance: maybe for partitions
                # that are someone else's now. Faust's recovery seeks every stream partition
                # back to its committed offset before the flow resumes: dropping skips nothing.
                log.info("batch_dropped_in_rebalance", records=sum(map(len, batches.values())))
                return
            try:
                await self.sink.handle(batches)
            except Exception as exc:
                if not (self.should_stop or self.transport.app.should_stop):
                    raise
                # Stopping while the batch waited for the broker: not handled, not committed.
                log.info("batch_abandoned_at_stop", error=repr(exc))
                return
            for tp, tp_records in batches.items():
                self._handled[tp] = tp_records[-1].offset + 1
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))

    async def _put_back(
        self, records: Mapping[TP, Sequence[Any]], why: str, *, quiet: bool = False
    ) -> None:
        """Seek each partition back to the first of its records that cannot be delivered now.

        Faust's getmany seeks to the committed offsets instead, which leaves a changelog
        partition (never committed) past records its recovery is waiting for.
        """
        if not quiet:
            log.info("fetch_put_back", reason=why, records=sum(map(len, records.values())))
        for tp, tp_records in records.items():
            try:
                await self.seek(tp, tp_records[0].offset)
            except Exception as exc:  # not ours any more: its next owner starts from its commit
                log.info("put_back_skipped", partition=str(tp), error=repr(exc))

    def _recovering(self, tp: TP) -> bool:
        recovery = self._recovery()
        return bool(recovery.in_recovery and tp in recovery.active_tps)

    def _recovery(self) -> Any:
        # The TableManager's type (TableManagerT) does not declare its recovery service.
        return cast(Any, self.app.tables).recovery

    async def _recover(self, tp: TP, tp_records: Sequence[Any]) -> None:
        """Apply a fetch of changelog records to the table's store in one go.

        Faust's recovery takes each changelog record through the conductor, a queue and its
        recovery loop: about 200 us per record here, 60 s for a worker holding 300,000 members.
        The records of a partition being recovered are applied here instead (a None value is a
        tombstone), and the recovery's offset for the partition moves to the last one. Then the
        last record still goes Faust's way: at an offset it has seen it applies nothing, but it
        checks whether recovery is complete, as it does after every record.
        """
        recovery = self._recovery()
        store = recovery.tp_to_table[tp].data
        data, partitions = store.data, store._key_partition
        for record in tp_records:
            if record.value is None:
                data.pop(record.key, None)
                partitions.pop(record.key, None)
            else:
                data[record.key] = record.value
                partitions[record.key] = tp.partition
        recovery.active_offsets[tp] = tp_records[-1].offset
        await self._deliver_each(tp, tp_records[-1:])

    async def _deliver_each(self, tp: TP, tp_records: Sequence[Any]) -> None:
        # Faust's own per-record path (minus its gap bookkeeping: no acking topic comes here).
        callback = self.callback
        for record in tp_records:
            await callback(self._to_message(tp, record))
            self._read_offset[tp] = record.offset


class _ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """Faust's consumer thread, with the broker's wait for a fetch set by the transport.

    Faust hard-codes ``fetch_max_wait_ms=1500``: how long the broker may hold a fetch that
    finds no new data. Measured here, some fetches were held that long while events kept
    arriving: getmany answered nothing for 1.5 s, then 1,600 records 1.65 s old, which was the
    whole freshness tail of a worker at 1,000 events/s (docs/features.md, "Freshness").
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # The AIOKafkaConsumer keeps it until start() builds its fetcher from it.
        consumer._fetch_max_wait_ms = cast(BatchingTransport, transport).fetch_max_wait_ms
        return consumer


class BatchingTransport(aiokafka_driver.Transport):
    """The aiokafka transport whose consumer hands ``sink.topics`` to ``sink`` a fetch at a time.

    Install it before anything uses the app's consumer::

        app.transport = BatchingTransport(app.conf.broker_consumer, app, sink=event_batches)
    """

    Consumer = BatchingConsumer

    def __init__(
        self, url: Any, app: Any, *, sink: BatchSink, fetch_max_wait_ms: int = 100
    ) -> None:
        super().__init__(url, app)
        self.sink = sink
        self.fetch_max_wait_ms = fetch_max_wait_ms
