"""Faust's aiokafka consumer, handing the event topic's records over one fetch at a time.

Faust delivers every record through its conductor, a channel queue, the stream iterator and
per-message acks: about 160-240 µs of Python per record on this machine, the whole budget of a
5,000 events/s worker. The job folds events in batches anyway, so for the topics named in
``batch_topics`` this consumer skips that path: each fetch's records go straight to one
``batch_handler`` call, and the consumer itself remembers, per partition, the offset after the
last record whose batch was handled. That position is what it commits; records of other topics
(the table changelogs during recovery) still take Faust's usual per-record path.

Why committing a handled position is safe, and what happens around a rebalance:

- The handler returns only after the batch's changelog records are acknowledged, so a committed
  offset never runs ahead of the member states it produced.
- A batch is handled under a lock; a revocation takes the same lock, so it waits for the batch in
  flight and then commits what was handled for the revoked partitions before their new owner
  starts from that offset.
- Records fetched while a rebalance was under way are not handled. Those that come back after
  the flow stopped are put back (each partition seeks to its first such record); a batch that
  was waiting while a revocation went through is dropped, as Faust's recovery seeks every
  stream partition back to its committed offset before the flow resumes. Either way whoever
  owns the partition next fetches them again (records after a committed offset may be folded
  twice; the fold is idempotent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from recsys.log import get_logger

__all__ = ["BatchHandler", "BatchingConsumer", "BatchingTransport"]

log = get_logger(__name__)

# The records of one fetch, per partition, in offset order (aiokafka ConsumerRecords).
BatchHandler = Callable[[Mapping[TP, Sequence[Any]]], Awaitable[None]]

REVOKE_COMMIT_TIMEOUT_S = 10.0


class BatchingConsumer(aiokafka_driver.Consumer):
    """See the module docstring; its topics and handler come from its :class:`BatchingTransport`."""

    def __init__(self, transport: BatchingTransport, *args: Any, **kwargs: Any) -> None:
        super().__init__(transport, *args, **kwargs)
        self.batch_topics = transport.batch_topics
        self.batch_handler = transport.batch_handler
        self._handled: dict[TP, int] = {}  # partition -> offset after its last handled record
        self._batch_lock = asyncio.Lock()
        # Odd while a rebalance is under way; changes at its start and at its end.
        self._epoch = 0

    # -- rebalancing ------------------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        async with self._batch_lock:  # waits for the batch in flight
            self._epoch += 1 if self._epoch % 2 == 0 else 2
            await self._commit_handled(revoked)
            for tp in revoked:
                self._handled.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        await super().on_partitions_assigned(assigned, generation_id)
        if self._epoch % 2:
            self._epoch += 1

    async def _commit_handled(self, tps: Iterable[TP]) -> None:
        offsets = {tp: self._handled[tp] for tp in tps if tp in self._handled}
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
            return self.handled_offset(tp)
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
                    else:
                        await self._deliver_each(tp, tp_records)
                if batches:
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
            await self.batch_handler(batches)
            for tp, tp_records in batches.items():
                self._handled[tp] = tp_records[-1].offset + 1
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))

    async def _put_back(self, records: Mapping[TP, Sequence[Any]], why: str) -> None:
        """Seek each partition back to the first of its records that cannot be delivered now.

        Faust's getmany seeks to the committed offsets instead, which leaves a changelog
        partition (never committed) past records its recovery is waiting for.
        """
        log.info("fetch_put_back", reason=why, records=sum(map(len, records.values())))
        for tp, tp_records in records.items():
            try:
                await self.seek(tp, tp_records[0].offset)
            except Exception as exc:  # not ours any more: its next owner starts from its commit
                log.info("put_back_skipped", partition=str(tp), error=repr(exc))

    async def _deliver_each(self, tp: TP, tp_records: Sequence[Any]) -> None:
        # Faust's own per-record path (minus its gap bookkeeping: no acking topic comes here).
        callback = self.callback
        for record in tp_records:
            await callback(self._to_message(tp, record))
            self._read_offset[tp] = record.offset


class BatchingTransport(aiokafka_driver.Transport):
    """The aiokafka transport whose consumer hands ``topics`` to ``handler`` a fetch at a time.

    Install it before anything uses the app's consumer::

        app.transport = BatchingTransport(app.conf.broker_consumer, app,
                                          topics={"events"}, handler=fold_and_publish)
    """

    Consumer = BatchingConsumer

    def __init__(self, url: Any, app: Any, *, topics: Iterable[str], handler: BatchHandler) -> None:
        super().__init__(url, app)
        self.batch_topics = frozenset(topics)
        self.batch_handler = handler
