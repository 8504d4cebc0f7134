"""EventPublisher and RecordBatcher against a fake producer: failure handling, no Kafka needed.

The fake stands in for aiokafka's producer only where the test is about what the publisher does
when the producer misbehaves (fails a batch, never acknowledges, cannot connect); the real
producer is exercised by the integration tests.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from recsys.config import Settings
from recsys_ingest import publisher as publisher_module
from recsys_ingest.batching import partition_for
from recsys_ingest.publisher import EventPublisher, KafkaUnavailable

TOPIC = "fake.topic"
PARTITIONS = 3


class _Cluster:
    def __init__(self, known: bool = True) -> None:
        self.known = known

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(PARTITIONS)) if self.known and topic == TOPIC else None


class _Client:
    def __init__(self, fake: FakeProducer) -> None:
        self.fake = fake
        self.cluster = _Cluster()

    async def fetch_all_metadata(self) -> _Cluster:
        if not self.fake.reachable:
            raise KafkaConnectionError("fake broker down")
        return _Cluster()


class FakeProducer:
    """Acks, fails or ignores batches by ``mode``; records what it delivered per partition."""

    def __init__(self, mode: str = "ack", *, start_error: bool = False) -> None:
        self.mode = mode
        self.start_error = start_error
        self.reachable = True
        self.client = _Client(self)
        self.delivered: dict[int, list[bytes]] = defaultdict(list)
        self.stopped = False

    async def start(self) -> None:
        if self.start_error:
            raise KafkaConnectionError("fake broker down")

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(PARTITIONS))

    async def stop(self) -> None:
        self.stopped = True

    async def flush(self) -> None:
        return None

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(16_384, 0)  # no compression

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.mode == "ack":
            records = DefaultRecordBatch(bytearray(batch._build()))
            self.delivered[partition] += [r.key for r in records]
            future.set_result(None)
        elif self.mode == "fail":
            future.set_exception(OutOfOrderSequenceNumber())
        return future  # "hang": never resolved


def make_publisher(
    producers: list[FakeProducer], *, timeout_s: float = 0.05
) -> tuple[EventPublisher, Callable[[], int]]:
    settings = Settings()
    ingest = settings.ingest.model_copy(
        update={"topic": TOPIC, "produce_timeout_s": timeout_s, "health_interval_s": 0.01}
    )
    made: list[FakeProducer] = []

    def factory() -> Any:
        made.append(producers[min(len(made), len(producers) - 1)])
        return made[-1]

    publisher = EventPublisher(
        settings.model_copy(update={"ingest": ingest}), producer_factory=factory
    )
    return publisher, lambda: len(made)


def records(users: list[str], n: int) -> list[tuple[bytes, bytes]]:
    return [(u.encode(), f"{u}:{i}".encode()) for i in range(n) for u in users]


async def eventually(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(10):
            while True:
                if condition():
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"gave up waiting for {what}") from None


async def test_records_go_to_their_keys_partition_in_order() -> None:
    fake = FakeProducer()
    publisher, _ = make_publisher([fake])
    await publisher.start()
    users = [f"u{i}" for i in range(10)]
    await asyncio.gather(*(publisher.publish(records(users[i::2], 5)) for i in range(2)))
    await publisher.publish(records(users, 1))
    await publisher.stop()
    for partition, keys in fake.delivered.items():
        assert all(partition_for(k, PARTITIONS) == partition for k in keys)
    per_user = defaultdict(list)
    for keys in fake.delivered.values():
        for key in keys:
            per_user[key].append(key)
    assert {u.encode(): 6 for u in users} == {k: len(v) for k, v in per_user.items()}
    assert fake.stopped


async def test_a_failed_batch_gives_503_and_a_fresh_producer() -> None:
    broken, healthy = FakeProducer("fail"), FakeProducer("ack")
    publisher, made = make_publisher([broken, healthy])
    await publisher.start()
    with pytest.raises(KafkaUnavailable) as failed:
        await publisher.publish(records(["u1"], 3))
    assert failed.value.reason == "error"
    await eventually(lambda: publisher.ready[0], "the replacement producer")
    await publisher.publish(records(["u1"], 3))
    assert made() == 2
    assert sum(map(len, healthy.delivered.values())) == 3
    assert broken.stopped
    await publisher.stop()


async def test_a_producer_that_never_acknowledges_is_replaced() -> None:
    stuck, healthy = FakeProducer("hang"), FakeProducer("ack")
    publisher, made = make_publisher([stuck, healthy], timeout_s=0.02)
    await publisher.start()
    reasons = []
    async with asyncio.timeout(10):
        while made() < 2:
            with pytest.raises(KafkaUnavailable) as failed:
                await publisher.publish(records(["u1"], 1))
            reasons.append(failed.value.reason)
            await asyncio.sleep(0.001)  # a 503 without waiting must not starve the reconnect
    assert (
        reasons[: publisher_module.STALL_TIMEOUTS] == ["timeout"] * publisher_module.STALL_TIMEOUTS
    )
    await eventually(lambda: publisher.ready[0], "the replacement producer")
    await publisher.publish(records(["u1"], 1))
    await publisher.stop()


async def test_unreachable_broker_fails_fast_and_readiness_says_why() -> None:
    fake = FakeProducer()
    publisher, _ = make_publisher([fake])
    await publisher.start()
    assert publisher.ready == (True, "ok")
    fake.reachable = False
    await eventually(lambda: not publisher.ready[0], "readiness to fail")
    assert "unreachable" in publisher.ready[1]
    with pytest.raises(KafkaUnavailable) as failed:
        await publisher.publish(records(["u1"], 1))
    assert failed.value.reason == "not_ready"
    fake.reachable = True
    await eventually(lambda: publisher.ready[0], "readiness to come back")
    await publisher.publish(records(["u1"], 1))
    await publisher.stop()
    assert publisher.ready == (False, "shutting down")


async def test_start_does_not_fail_when_kafka_is_down_and_connects_later() -> None:
    down, up = FakeProducer(start_error=True), FakeProducer()
    publisher, made = make_publisher([down, up], timeout_s=0.05)
    await publisher.start()  # returns after its wait, not ready
    with pytest.raises(KafkaUnavailable):
        await publisher.publish(records(["u1"], 1))
    await eventually(lambda: publisher.ready[0], "the background connection")
    await publisher.publish(records(["u1"], 1))
    assert made() == 2
    await publisher.stop()


async def test_stop_hands_over_open_batches() -> None:
    fake = FakeProducer()
    publisher, _ = make_publisher([fake])
    await publisher.start()
    pending = asyncio.create_task(publisher.publish(records(["u1", "u2"], 50)))
    await asyncio.sleep(0)
    await publisher.stop()
    await pending
    assert sum(map(len, fake.delivered.values())) == 100


async def test_a_stopped_publisher_refuses_records() -> None:
    fake = FakeProducer()
    publisher, _ = make_publisher([fake])
    await publisher.start()
    await publisher.stop()
    with pytest.raises(KafkaUnavailable):
        await publisher.publish(records(["u1"], 1))
