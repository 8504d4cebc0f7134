"""Ingest under pressure, against the real server process and the real Kafka.

- Requests beyond ``max_requests_in_flight`` get 503 + Retry-After at once, body unread.
- A partition holding ``max_waiting_batches`` refuses more events with 503, queueing nothing.
- A body that does not arrive within ``body_timeout_s`` gets 408 and gives its slot back.

Each runs ``python -m recsys_ingest`` (uvicorn, uvloop, httptools) on a free port. The first two
stall the producer by freezing (SIGSTOP) a private Kafka: its connections stay open and nothing is
answered, as with a broker that hangs. A Kafka that is stopped would not do: the publisher's
health probe notices it within a second and every request gets 503 before it is queued. So these
runs probe once an hour (``health_interval_s``), which stands for the stalls no probe sees (a
partition whose batch is retried for ever, a broker that answers metadata but not produce
requests). Every wait is bounded by a guard that only turns a hang into a failure.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from recsys.config import Settings
from recsys.events.v1 import events_pb2
from tests.ingest_support import (
    API_KEY,
    JSON_HEADERS,
    consume_all,
    create_topic,
    event,
    frozen,
    ingest_process,
    metric,
    start_private_kafka,
    until,
)

pytestmark = pytest.mark.integration

LIMIT = 4  # max_requests_in_flight of the first test
BOUND = 2  # max_waiting_batches of the second


@pytest.fixture(scope="module")
async def private(
    infra: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Settings]:
    async with start_private_kafka(infra, tmp_path_factory.mktemp("kafka")) as settings:
        # Requests to the frozen broker must not time out inside the producer meanwhile.
        yield settings.model_copy(
            update={"kafka": settings.kafka.model_copy(update={"request_timeout_ms": 120_000})}
        )


def _batch(members: int = 6, per_member: int = 1) -> list[dict[str, Any]]:
    return [
        event("play", user_id=f"member-{m}", occurred_at=1714564800000 + n)
        for n in range(per_member)
        for m in range(members)
    ]


def _ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in events]


async def _post(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> httpx.Response:
    return await client.post("/v1/events", content=orjson.dumps({"events": events}))


def _client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        headers=JSON_HEADERS,
        timeout=180,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    )


async def _in_kafka(settings: Settings, topic: str) -> Counter[str]:
    records = await consume_all(settings, topic)
    return Counter(events_pb2.Event.FromString(r.value).event_id for r in records)


async def test_requests_beyond_the_in_flight_limit_get_503_at_once_and_none_accepted_is_lost(
    private: Settings, unique: str, tmp_path: Path
) -> None:
    topic = f"test.inflight.{unique}"
    await create_topic(private, topic, partitions=3)
    accepted: list[str] = []
    held_batches = [_batch() for _ in range(LIMIT)]
    excess_batches = [_batch() for _ in range(2 * LIMIT)]
    async with (
        ingest_process(
            private,
            topic,
            tmp_path / "ingest.log",
            max_requests_in_flight=LIMIT,
            produce_timeout_s=120,
            health_interval_s=3600,
            retry_after_s=1,
        ) as url,
        _client(url) as client,
    ):
        first = _batch()
        assert (await _post(client, first)).status_code == 202
        accepted += _ids(first)

        async def limit_reached() -> bool:
            return await metric(client, "recsys_ingest_requests_in_flight") == LIMIT

        with frozen(private):
            held = [asyncio.create_task(_post(client, b)) for b in held_batches]
            await until(limit_reached, f"{LIMIT} requests in flight")
            # Valid batches, and bodies that are not even JSON: a 400 would mean it was read.
            excess = await asyncio.gather(
                *(_post(client, b) for b in excess_batches),
                *(client.post("/v1/events", content=b"{not json") for _ in range(LIMIT)),
            )
            healthz = await client.get("/healthz")
            still_held = sum(not task.done() for task in held)

        assert still_held == LIMIT  # the excess was answered while the first LIMIT waited
        for response in excess:
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            assert "requests in flight" in response.json()["detail"]
        assert healthz.status_code == 200  # the probes are never limited
        for events, response in zip(held_batches, await asyncio.gather(*held), strict=True):
            assert response.status_code == 202, response.text
            accepted += _ids(events)
        last = _batch()
        assert (await _post(client, last)).status_code == 202  # every slot was given back
        accepted += _ids(last)
        assert await metric(client, "recsys_ingest_requests_shed_total") == 3 * LIMIT
        assert await metric(client, "recsys_ingest_requests_total", status="503") == 3 * LIMIT
        assert await metric(client, "recsys_ingest_requests_in_flight") == 0

    in_kafka = await _in_kafka(private, topic)
    assert [i for i in accepted if in_kafka[i] != 1] == [], "acknowledged events lost or doubled"
    assert not [i for b in excess_batches for i in _ids(b) if in_kafka[i]], "a refused event"
    assert sum(in_kafka.values()) == len(accepted)


async def test_a_partition_at_max_waiting_batches_refuses_events_and_none_accepted_is_lost(
    private: Settings, unique: str, tmp_path: Path
) -> None:
    topic = f"test.queue.{unique}"
    await create_topic(private, topic, partitions=1)
    accepted: list[str] = []
    queued: list[tuple[list[dict[str, Any]], asyncio.Task[httpx.Response]]] = []
    refused: list[tuple[list[dict[str, Any]], httpx.Response]] = []
    most_waiting = 0.0
    async with (
        ingest_process(
            private,
            topic,
            tmp_path / "ingest.log",
            max_waiting_batches=BOUND,
            producer_batch_bytes=16_384,  # about 160 of these events per batch
            max_requests_in_flight=500,
            produce_timeout_s=120,
            health_interval_s=3600,
            retry_after_s=1,
        ) as url,
        _client(url) as client,
    ):
        first = _batch(members=1, per_member=100)
        assert (await _post(client, first)).status_code == 202
        accepted += _ids(first)

        with frozen(private):
            # One request at a time, each either refused or waiting for Kafka before the next:
            # without the bound every one would be queued, without limit.
            for _ in range(60):  # fewer than the client's 100 connections
                events = _batch(members=1, per_member=100)
                task = asyncio.create_task(_post(client, events))

                async def settled(task: asyncio.Task[httpx.Response] = task) -> bool:
                    awaiting = await metric(client, "recsys_ingest_requests_awaiting_kafka")
                    return task.done() or awaiting == len(queued) + 1

                await until(settled, "the request refused or waiting for Kafka")
                most_waiting = max(
                    most_waiting, await metric(client, "recsys_ingest_waiting_batches")
                )
                if task.done():
                    refused.append((events, task.result()))
                    if len(refused) == 3:
                        break
                else:
                    queued.append((events, task))

        assert len(refused) == 3, f"{len(queued)} requests queued while Kafka hung, none refused"
        assert queued
        # The bound, plus what one request added to a partition just under it.
        assert 0 < most_waiting <= BOUND + 2
        for _, response in refused:
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            assert "not keeping up" in response.json()["detail"]
        for events, task in queued:
            response = await task
            assert response.status_code == 202, response.text
            accepted += _ids(events)
        refused_events = sum(len(events) for events, _ in refused)
        unavailable = await metric(
            client, "recsys_ingest_events_unavailable_total", reason="queue_full"
        )
        assert unavailable == refused_events
        assert await metric(client, "recsys_ingest_waiting_batches") == 0

    in_kafka = await _in_kafka(private, topic)
    assert [i for i in accepted if in_kafka[i] != 1] == [], "acknowledged events lost or doubled"
    assert not [i for events, _ in refused for i in _ids(events) if in_kafka[i]], "a refused event"
    assert sum(in_kafka.values()) == len(accepted)


class _SlowClient(asyncio.Protocol):
    """A client that sends its headers and then trickles its body (or sends none of it).

    A protocol rather than a stream: the server closes the connection with unread bytes, which
    resets it, and everything received before the reset must still be seen.
    """

    def __init__(self) -> None:
        self.received = bytearray()
        self.closed: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(bytes(self.received))

    async def trickle(self) -> None:
        while not self.closed.done():
            assert self.transport is not None
            self.transport.write(b" ")
            await asyncio.sleep(0.05)

    async def stay_silent(self) -> None:
        await self.closed


async def _slow_request(url: str, *, trickle: bool) -> tuple[_SlowClient, asyncio.Task[None]]:
    parsed = httpx.URL(url)
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(_SlowClient, parsed.host, parsed.port or 80)
    assert client.transport is not None
    client.transport.write(
        b"POST /v1/events HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\n"
        b"X-API-Key: " + API_KEY.encode() + b"\r\nContent-Length: 100000\r\n\r\n"
        b'{"events": ['
    )
    task = asyncio.create_task(client.trickle() if trickle else client.stay_silent())
    return client, task


async def test_a_body_that_does_not_arrive_in_time_gets_408_and_frees_its_slot(
    infra: Settings, unique: str, tmp_path: Path
) -> None:
    topic = f"test.slowbody.{unique}"
    await create_topic(infra, topic, partitions=3)
    async with (
        ingest_process(
            infra, topic, tmp_path / "ingest.log", max_requests_in_flight=2, body_timeout_s=1
        ) as url,
        _client(url) as client,
    ):
        trickler, trickling = await _slow_request(url, trickle=True)
        silent, waiting = await _slow_request(url, trickle=False)

        async def both_in_flight() -> bool:
            return await metric(client, "recsys_ingest_requests_in_flight") == 2

        await until(both_in_flight, "the two slow requests in flight")
        busy = await _post(client, _batch())
        assert busy.status_code == 503  # the slow clients hold both slots meanwhile

        try:
            async with asyncio.timeout(90):
                answers = await asyncio.gather(trickler.closed, silent.closed)
                await asyncio.gather(trickling, waiting)
        except TimeoutError:
            raise AssertionError("the slow requests were not cut off") from None
        for answer in answers:
            head = answer.split(b"\r\n\r\n", 1)[0].lower()
            assert head.startswith(b"http/1.1 408"), answer
            assert b"connection: close" in head  # and the server did close it
        after = _batch()
        assert (await _post(client, after)).status_code == 202  # the slots are free again
        assert await metric(client, "recsys_ingest_requests_total", status="408") == 2
        assert await metric(client, "recsys_ingest_requests_in_flight") == 0

    assert await _in_kafka(infra, topic) == Counter(_ids(after))
