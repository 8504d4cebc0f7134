"""Every served list, to Kafka off the request path; the last personalised list per member.

    log = ServedLog(settings)
    log.start()                                  # connects Kafka in the background, retried
    task = asyncio.create_task(log.run())
    log.record(served)                           # never waits
    await log.close(timeout_s=5)                 # sends what is queued

Each list becomes two records, both keyed by member:

- an **impression event** (``recsys.events.v1.Event``, type impression, row ``api``, the
  request id) on the events topic: the bronze writer archives it like any client event, silver
  explodes it into one row per title shown, and the training labels are built from those rows
  (docs/learning.md). The API's list *is* what the member was shown as far as the platform
  knows;
- a ``recsys.recommendations.v1.ServedRecommendations`` on ``recsys.recommendations.served.v1``:
  the items with scores and reasons, the variants, the model versions and the level, for A/B
  metrics and for answering "what did this member get, and why".

A request only queues the list (bounded by ``served_queue``): Kafka slow or down never delays an
answer; beyond the bound new lists are dropped and counted
(``recsys_api_served_log_total{result="dropped"}``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache
from google.protobuf.timestamp_pb2 import Timestamp

from recsys.clients.startup import keep_trying
from recsys.events.v1 import events_pb2
from recsys.log import get_logger
from recsys.recommendations.v1 import served_pb2
from recsys_api.metrics import SERVED_LOG

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

    from recsys.config import Settings

__all__ = ["IMPRESSION_ROW", "LastLists", "ServedLog", "impression_event"]

log = get_logger(__name__)

IMPRESSION_ROW = "api"
_BATCH = 500  # lists sent per round


def impression_event(served: served_pb2.ServedRecommendations) -> events_pb2.Event:
    """The impression event of a served list (its event id is the request id)."""
    at = Timestamp()
    at.FromMilliseconds(served.served_at_ms)
    return events_pb2.Event(
        event_id=served.request_id,
        event_type=events_pb2.EVENT_TYPE_IMPRESSION,
        user_id=served.user_id,
        device=events_pb2.Device.Value(f"DEVICE_{served.device.upper()}"),
        country=served.country,
        occurred_at=at,
        received_at=at,
        app_version="recsys-api",
        impression=events_pb2.ImpressionDetails(
            title_ids=[item.title_id for item in served.items],
            row=IMPRESSION_ROW,
            position=0,
            request_id=served.request_id,
        ),
    )


class LastLists:
    """The last personalised list served to each member, for the emergency level (LRU)."""

    def __init__(self, size: int) -> None:
        self._lists: LRUCache[str, tuple[served_pb2.ServedItem, ...]] | None = (
            LRUCache(maxsize=size) if size > 0 else None
        )

    def remember(self, user_id: str, items: Sequence[served_pb2.ServedItem]) -> None:
        if self._lists is not None and items:
            self._lists[user_id] = tuple(items)

    def get(self, user_id: str) -> tuple[served_pb2.ServedItem, ...]:
        if self._lists is None:
            return ()
        return self._lists.get(user_id, ())

    def __len__(self) -> int:
        return 0 if self._lists is None else len(self._lists)


class ServedLog:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._queue: asyncio.Queue[served_pb2.ServedRecommendations] = asyncio.Queue(
            maxsize=settings.api.served_queue
        )
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[Any] | None = None
        self._ready = asyncio.Event()

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    def record(self, served: served_pb2.ServedRecommendations) -> None:
        """Queue a served list (never waits)."""
        try:
            self._queue.put_nowait(served)
        except asyncio.QueueFull:
            SERVED_LOG.labels(result="dropped").inc()

    def start(self) -> None:
        """Connect Kafka in the background (retried until it answers)."""
        self._connecting = asyncio.create_task(self._connect())

    async def _connect(self) -> None:
        from recsys.clients.kafka import started_producer

        settings = self._settings.kafka
        self._producer = await keep_trying(
            "kafka", lambda: started_producer(settings, client_id="recsys-api")
        )
        self._ready.set()

    async def run(self) -> None:
        """Send queued lists until cancelled."""
        await self._ready.wait()  # the queue holds (and bounds) what comes meanwhile
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._send(batch)
            except Exception as exc:  # e.g. the producer's buffer stayed full: count, go on
                SERVED_LOG.labels(result="failed").inc(len(batch))
                log.warning("served lists not sent", lists=len(batch), error=repr(exc)[:200])

    async def _send(self, batch: Sequence[served_pb2.ServedRecommendations]) -> None:
        assert self._producer is not None
        api = self._settings.api
        sends = []
        for served in batch:
            key = served.user_id.encode()
            event = impression_event(served)
            sends.append(
                await self._producer.send(api.impressions_topic, event.SerializeToString(), key=key)
            )
            sends.append(
                await self._producer.send(api.served_topic, served.SerializeToString(), key=key)
            )
        outcomes = await asyncio.gather(*sends, return_exceptions=True)
        for impression, record in zip(outcomes[::2], outcomes[1::2], strict=True):
            failed = isinstance(impression, BaseException) or isinstance(record, BaseException)
            SERVED_LOG.labels(result="failed" if failed else "sent").inc()

    async def close(self, *, timeout_s: float) -> None:
        """Send what is queued (within ``timeout_s``), then disconnect."""
        if self._connecting is not None:
            self._connecting.cancel()
        pending = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
        if pending and self._ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._send(pending), timeout_s)
        if self._producer is not None:
            await self._producer.stop()
