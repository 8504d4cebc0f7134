"""Produce/consume round trip through a consumer group on the real broker."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from recsys.clients.kafka import kafka_admin, kafka_consumer, kafka_producer
from recsys.config import Settings
from recsys.events.v1 import events_pb2


async def _create_topic(settings: Settings, name: str, partitions: int) -> None:
    admin = kafka_admin(settings.kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def test_events_round_trip_through_a_consumer_group(infra: Settings, unique: str) -> None:
    topic, group = f"test.roundtrip.{unique}", f"test-group-{unique}"
    await _create_topic(infra, topic, partitions=3)
    users = [f"user-{i}" for i in range(5)]
    sent: dict[str, list[str]] = {u: [] for u in users}

    producer = kafka_producer(infra.kafka)
    await producer.start()
    try:
        for seq in range(20):
            for user in users:
                event = events_pb2.Event(
                    event_id=f"{user}-{seq}",
                    event_type=events_pb2.EVENT_TYPE_PLAY,
                    user_id=user,
                    title_id="tt0000001",
                    play=events_pb2.PlayDetails(position_sec=float(seq)),
                )
                await producer.send(topic, event.SerializeToString(), key=user.encode())
                sent[user].append(event.event_id)
        await producer.flush()
    finally:
        await producer.stop()

    consumer = kafka_consumer(infra.kafka, topic, group_id=group)
    await consumer.start()
    received: dict[str, list[str]] = {u: [] for u in users}
    partitions_of: dict[str, set[int]] = {u: set() for u in users}
    try:
        async with asyncio.timeout(30):
            while sum(map(len, received.values())) < 100:
                batch = await consumer.getmany(timeout_ms=1000)
                for tp, records in batch.items():
                    for record in records:
                        event = events_pb2.Event.FromString(record.value)
                        assert record.key == event.user_id.encode()
                        received[event.user_id].append(event.event_id)
                        partitions_of[event.user_id].add(tp.partition)
        await consumer.commit()
        committed = {p: await consumer.committed(TopicPartition(topic, p)) for p in range(3)}
    finally:
        await consumer.stop()

    # Every event exactly once, each member's events in the order sent, one partition per member.
    assert received == sent
    assert all(len(p) == 1 for p in partitions_of.values())
    # The group's committed offsets cover everything: a restarted member would read nothing twice.
    assert sum(offset or 0 for offset in committed.values()) == 100
