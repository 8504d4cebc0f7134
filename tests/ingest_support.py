"""Helpers for the ingest service's tests: valid events of every type, and Kafka topic readers.

body = {"events": [event("play", user_id="u1"), event("rate", rating=5)]}
async with running_ingest(settings) as (app, client): await client.post(...)
records = await consume_all(settings, topic)
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import httpx
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.admin import NewTopic
from fastapi import FastAPI

from recsys.clients.kafka import kafka_admin, kafka_consumer
from recsys.config import Settings
from recsys_ingest.app import create_app

T = TypeVar("T")

API_KEY = "test-key"
JSON_HEADERS = {"Content-Type": "application/json", "X-API-Key": API_KEY}

TYPE_FIELDS: dict[str, dict[str, Any]] = {
    "view": {"title_id": "tt0000001", "page": "home"},
    "play": {"title_id": "tt0000001", "position_sec": 12.5},
    "pause": {"title_id": "tt0000001", "position_sec": 600.0, "watched_sec": 587.5},
    "complete": {"title_id": "tt0000001", "position_sec": 5400, "watched_sec": 5300.25},
    "rate": {"title_id": "tt0000001", "rating": 4},
    "search": {"query": "space documentary"},
    "skip": {"title_id": "tt0000001", "position_sec": 30.0, "watched_sec": 30.0},
    "impression": {
        "title_ids": ["tt0000001", "tt0000002", "tt0000003"],
        "row": "top_picks",
        "position": 2,
        "request_id": "req-1",
    },
}


def event(event_type: str = "play", /, **overrides: Any) -> dict[str, Any]:
    """A valid event of ``event_type``; keyword arguments replace (or add) fields."""
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "user_id": "u1",
        "occurred_at": "2024-05-01T12:00:00Z",
        "device": "tv",
        "country": "US",
        **TYPE_FIELDS[event_type],
    }
    body.update(overrides)
    return body


def without(body: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in fields}


def ingest_settings(settings: Settings, topic: str, **ingest: Any) -> Settings:
    """``settings`` with the ingest service pointed at ``topic`` and the test API key."""
    return settings.model_copy(
        update={
            "ingest": settings.ingest.model_copy(
                update={"topic": topic, "api_keys": API_KEY, **ingest}
            )
        }
    )


@asynccontextmanager
async def running_ingest(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan running (producer started), and a client that calls it."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ingest", timeout=60
        ) as client,
    ):
        yield app, client


class AppInThread:
    """The app, lifespan running, on an event loop of its own thread; called synchronously.

    For hypothesis tests, which are synchronous: ``with AppInThread(app) as app: app.post(...)``.
    """

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ingest-app")
        self._stack = AsyncExitStack()
        self._client: httpx.AsyncClient | None = None

    def __enter__(self) -> AppInThread:
        self._thread.start()
        self._call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._call(self._stack.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()

    async def _start(self) -> None:
        await self._stack.enter_async_context(self._app.router.lifespan_context(self._app))
        self._client = await self._stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self._app), base_url="http://ingest"
            )
        )

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        assert self._client is not None
        return self._call(self._client.post(url, **kwargs))

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)


async def create_topic(settings: Settings, name: str, partitions: int = 6) -> None:
    admin = kafka_admin(settings.kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, settings.kafka.replication_factor)])
    finally:
        await admin.close()


async def delete_topic(settings: Settings, name: str) -> None:
    admin = kafka_admin(settings.kafka)
    await admin.start()
    try:
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = kafka_consumer(settings.kafka, group_id=f"test-offsets-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


async def consume_all(
    settings: Settings, topic: str, timeout_s: float = 60
) -> list[ConsumerRecord]:
    """Every record of ``topic`` from the beginning to its current end, partition by partition."""
    consumer = kafka_consumer(settings.kafka, group_id=f"test-read-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        partitions = await _partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        async with asyncio.timeout(timeout_s):
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                batch = await consumer.getmany(*partitions, timeout_ms=500)
                for tp_records in batch.values():
                    records.extend(tp_records)
    finally:
        await consumer.stop()
    return records


async def _partitions(consumer: Any, topic: str) -> list[TopicPartition]:
    async with asyncio.timeout(30):
        while not (ids := consumer.partitions_for_topic(topic)):
            await consumer._client.force_metadata_update()  # a topic created a moment ago
            await asyncio.sleep(0.1)
    return [TopicPartition(topic, p) for p in sorted(ids)]
