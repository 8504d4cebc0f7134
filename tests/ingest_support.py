"""Helpers for the ingest service's tests: valid events of every type, and Kafka topic readers.

body = {"events": [event("play", user_id="u1"), event("rate", rating=5)]}
async with running_ingest(settings) as (app, client): await client.post(...)
async with ingest_process(settings, topic, log) as url: ...   # the real server, a subprocess
async with start_private_kafka(infra, tmp) as private: ...    # a Kafka of the test's own
with frozen(private): ...                                     # ... that answers nothing meanwhile
records = await consume_all(settings, topic)
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.admin import NewTopic
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from recsys.clients.kafka import kafka_admin, kafka_consumer
from recsys.config import InfraSettings, KafkaSettings, Settings
from recsys.infra import manager
from recsys.infra.process import read_record
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


# --- the real server, a private Kafka, and what /metrics says ----------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _quiet(_: str) -> None:
    pass


@asynccontextmanager
async def start_private_kafka(infra: Settings, state_dir: Path) -> AsyncIterator[Settings]:
    """A Kafka of the caller's own (free ports, state under ``state_dir``), stopped at the end.

    For tests that stop, freeze or otherwise hurt the broker: the shared one serves other tests.
    """
    private = infra.model_copy(
        update={
            "kafka": KafkaSettings(port=free_port(), controller_port=free_port(), heap="512m"),
            "infra": InfraSettings(
                state_dir=state_dir,
                cache_dir=infra.infra.cache_dir,
                start_timeout_s=infra.infra.start_timeout_s,
            ),
        }
    )
    try:
        await manager.up(private, ["kafka"], progress=_quiet)
        yield private
    finally:
        manager.down(private, ["kafka"], progress=_quiet)


@contextmanager
def frozen(private: Settings) -> Iterator[None]:
    """SIGSTOP the private Kafka meanwhile: connections stay open, no request is answered.

    A stall the producer cannot tell from a slow broker (no connection error, no error code);
    the JVM is continued on exit, whatever happened.
    """
    record = read_record(private.infra.state_dir / "kafka" / "process.json")
    process = record.process() if record is not None else None
    assert process is not None, "the private Kafka is not running"
    process.suspend()
    try:
        yield
    finally:
        process.resume()


@asynccontextmanager
async def ingest_process(
    settings: Settings, topic: str, log_path: Path, **ingest: object
) -> AsyncIterator[str]:
    """``python -m recsys_ingest`` (uvicorn, uvloop, httptools) on a free port; yields its URL.

    ``ingest`` sets ``RECSYS_INGEST__*`` fields (``max_requests_in_flight=4``); Kafka is the one of
    ``settings``. Stopped with SIGTERM at the end; its log goes to ``log_path`` and is shown when
    it does not become ready.
    """
    port = free_port()
    env = {
        **os.environ,
        "RECSYS_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "RECSYS_KAFKA__REQUEST_TIMEOUT_MS": str(settings.kafka.request_timeout_ms),
        "RECSYS_INGEST__HOST": "127.0.0.1",
        "RECSYS_INGEST__PORT": str(port),
        "RECSYS_INGEST__TOPIC": topic,
        "RECSYS_INGEST__API_KEYS": API_KEY,
        **{f"RECSYS_INGEST__{name.upper()}": str(value) for name, value in ingest.items()},
    }
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "recsys_ingest", env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        await _until_ready(url, process, log_path)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 60)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _until_ready(url: str, process: asyncio.subprocess.Process, log_path: Path) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        try:
            async with asyncio.timeout(90):
                while process.returncode is None:
                    try:
                        if (await client.get("/readyz")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.2)
        except TimeoutError:
            pass
    log = await asyncio.to_thread(log_path.read_text)
    raise AssertionError(f"ingest did not become ready:\n{log[-3000:]}")


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    """One sample of the service's ``/metrics`` (0 when absent, as for an unset counter)."""
    text = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


async def until(predicate: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 90) -> None:
    """Wait for ``predicate``; a guard that turns a hang into a failure, not a timing check."""
    try:
        async with asyncio.timeout(timeout_s):
            while not await predicate():  # noqa: ASYNC110 - polls another process
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"gave up waiting for {what}") from None
