"""The in-flight limit (ASGI middleware) and the per-partition bound of RecordBatcher, no Kafka.

The app behind the middleware and the producer behind the batcher are fakes that hang on
purpose; the real server and Kafka are in tests/integration/test_ingest_pressure.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from starlette.types import Message, Receive, Scope, Send

from recsys.inflight import InFlightLimit, Slots
from recsys_ingest.batching import QueueFull, RecordBatcher, partition_for
from recsys_ingest.routes import EVENTS_PATH

# --- InFlightLimit -------------------------------------------------------------------------------


class _HangingApp:
    """An ASGI app that reads nothing and answers 202 once released."""

    def __init__(self) -> None:
        self.entered: asyncio.Queue[str] = asyncio.Queue()  # the path of every call, as it starts
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.entered.put_nowait(scope["path"])
        await self.release.wait()
        if scope["path"] == "/boom":
            raise RuntimeError("boom")
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _limit(
    inner: _HangingApp,
    slots: Slots,
    *,
    retry_after_s: int = 1,
    on_shed: Callable[[], None] = lambda: None,
    path: str = EVENTS_PATH,
) -> InFlightLimit:
    return InFlightLimit(
        inner,
        slots=slots,
        path_prefix=path,
        status=503,
        detail="2 requests in flight, the limit",
        retry_after_s=retry_after_s,
        on_shed=on_shed,
    )


async def _call(app: InFlightLimit, path: str = EVENTS_PATH) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("the body must not be read")

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "http", "path": path, "method": "POST"}, receive, send)
    return sent


async def _entered(inner: _HangingApp) -> str:
    """The path of the next call that reached the app."""
    async with asyncio.timeout(10):
        return await inner.entered.get()


async def test_beyond_the_limit_a_request_gets_503_at_once_and_never_reaches_the_app() -> None:
    inner, slots, shed = _HangingApp(), Slots(limit=2), []
    app = _limit(inner, slots, retry_after_s=7, on_shed=lambda: shed.append(1))
    held = [asyncio.create_task(_call(app)) for _ in range(2)]
    assert [await _entered(inner), await _entered(inner)] == [EVENTS_PATH, EVENTS_PATH]
    assert slots.taken == 2

    refused = await _call(app)  # answered at once, receive() never called

    assert refused[0]["status"] == 503
    assert (b"retry-after", b"7") in refused[0]["headers"]
    assert b"requests in flight" in refused[1]["body"]
    assert (inner.entered.qsize(), len(shed)) == (0, 1)
    inner.release.set()
    assert [m[0]["status"] for m in await asyncio.gather(*held)] == [202, 202]
    assert slots.taken == 0
    assert (await _call(app))[0]["status"] == 202


async def test_other_paths_are_never_limited() -> None:
    inner = _HangingApp()
    app = _limit(inner, Slots(limit=1))
    held = asyncio.create_task(_call(app))
    assert await _entered(inner) == EVENTS_PATH
    probe = asyncio.create_task(_call(app, "/healthz"))
    assert await _entered(inner) == "/healthz"  # reached the app although the slot is taken
    inner.release.set()
    await asyncio.gather(held, probe)


async def test_a_request_that_fails_gives_its_slot_back() -> None:
    inner, slots = _HangingApp(), Slots(limit=1)
    app = _limit(inner, slots, path="/boom")
    inner.release.set()
    with pytest.raises(RuntimeError, match="boom"):
        await _call(app, "/boom")
    assert slots.taken == 0


# --- RecordBatcher's bound ------------------------------------------------------------------------

PARTITIONS = 3
TOPIC = "fake.topic"


class _StalledProducer:
    """Takes no batch until released: ``send_batch`` waits, as aiokafka's does on a stall."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.records: dict[int, int] = {}  # records taken, per partition

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(16_384, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        await self.release.wait()
        self.records[partition] = self.records.get(partition, 0) + batch.record_count()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _records(key: bytes, count: int, size: int = 6_000) -> list[tuple[bytes, bytes]]:
    return [(key, bytes(size)) for _ in range(count)]


def _key_of(partition: int) -> bytes:
    keys = (f"u{i}".encode() for i in range(1000))
    return next(k for k in keys if partition_for(k, PARTITIONS) == partition)


async def test_a_partition_at_its_bound_refuses_a_whole_request_and_the_others_go_on() -> None:
    producer = _StalledProducer()
    batcher = RecordBatcher(producer, TOPIC, max_waiting=3)
    full, other = _key_of(0), _key_of(1)
    acks: list[asyncio.Future[None]] = []
    requests = 0
    # Two 6 kB records fill a 16 kB batch: the next request seals it and opens another.
    while batcher.most_waiting() < 3:
        acks += batcher.add(_records(full, 2), PARTITIONS)
        requests += 1
        await asyncio.sleep(0)  # let the flusher take a batch and wait in send_batch
    waiting = batcher.most_waiting()

    with pytest.raises(QueueFull) as refused:
        batcher.add(_records(other, 1) + _records(full, 1), PARTITIONS)

    assert refused.value.partition == 0
    assert batcher.most_waiting() == waiting  # nothing of the refused request was appended
    acks += batcher.add(_records(other, 1), PARTITIONS)  # another partition is not held up
    producer.release.set()
    async with asyncio.timeout(10):
        await asyncio.gather(*acks)
    assert batcher.most_waiting() == 0
    # Partition 1 got only the record of the request after the refusal.
    assert producer.records == {0: requests * 2, 1: 1}
    await batcher.close(RuntimeError("done"))


async def test_an_overloaded_signal_refuses_whatever_the_count() -> None:
    inner, shed = _HangingApp(), []
    overloaded = [True]
    app = InFlightLimit(
        inner,
        slots=Slots(limit=10),
        path_prefix=EVENTS_PATH,
        status=429,
        detail="too busy",
        retry_after_s=1,
        on_shed=lambda: shed.append(1),
        overloaded=lambda: overloaded[0],
    )
    refused = await _call(app)
    assert refused[0]["status"] == 429
    assert shed == [1]
    assert inner.entered.empty()
    overloaded[0] = False
    held = asyncio.create_task(_call(app))
    assert await _entered(inner) == EVENTS_PATH
    inner.release.set()
    assert (await held)[0]["status"] == 202
