"""aiokafka factories with the platform's delivery guarantees baked in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from recsys.config import KafkaSettings

__all__ = ["kafka_admin", "kafka_consumer", "kafka_producer", "send_batches", "started_producer"]

# (topic, partition) -> records (key, value) in the order they must be written; a None value is
# a tombstone (a compacted topic then forgets the key)
PartitionedRecords = Mapping[tuple[str, int], Iterable[tuple[bytes | None, bytes | None]]]


def kafka_producer(
    settings: KafkaSettings,
    *,
    client_id: str | None = None,
    value_serializer: Callable[[Any], bytes] | None = None,
    linger_ms: int = 5,
    **overrides: Any,
) -> AIOKafkaProducer:
    """An idempotent producer with ``acks=all``: an acknowledged record is never lost or doubled.

    Idempotence makes the broker drop retried duplicates per partition, so retries on a transient
    error cannot double-write; ``acks=all`` waits for every in-sync replica.
    """
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id or settings.client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        request_timeout_ms=settings.request_timeout_ms,
        value_serializer=value_serializer,
        **overrides,
    )


async def started_producer(settings: KafkaSettings, *, client_id: str) -> AIOKafkaProducer:
    """A started :func:`kafka_producer`; one that fails to start is closed before the error
    propagates (for ``keep_trying`` loops that connect in the background)."""
    producer = kafka_producer(settings, client_id=client_id)
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer


def kafka_consumer(
    settings: KafkaSettings,
    *topics: str,
    group_id: str,
    client_id: str | None = None,
    auto_offset_reset: str = "earliest",
    **overrides: Any,
) -> AIOKafkaConsumer:
    """A consumer-group member that commits offsets only when told to (at-least-once by default).

    ``isolation_level=read_committed`` hides records of aborted transactions, which matters once a
    stage writes transactionally.
    """
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id or settings.client_id,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset=auto_offset_reset,
        isolation_level="read_committed",
        request_timeout_ms=settings.request_timeout_ms,
        **overrides,
    )


def kafka_admin(settings: KafkaSettings, *, client_id: str | None = None) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=client_id or f"{settings.client_id}-admin",
        request_timeout_ms=settings.request_timeout_ms,
    )


async def send_batches(
    producer: AIOKafkaProducer, records: PartitionedRecords
) -> list[asyncio.Future[Any]]:
    """Hand each partition's records to the producer as ready-made batches.

    ``send()`` costs about 30 us of Python per record (a metadata check, a future, the
    accumulator); a batch costs that once, which matters for the thousands of records a
    stream worker or a load generator sends per second. Returns the batches' delivery
    futures: await them (or flush) before relying on the records being written.
    """
    pending: list[asyncio.Future[Any]] = []
    for (topic, partition), items in records.items():
        batch = producer.create_batch()
        for key, value in items:
            if batch.append(key=key, value=value, timestamp=None) is None:  # batch full
                pending.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    size = len(value or b"") + len(key or b"")
                    raise ValueError(f"a record of {size} bytes exceeds the batch size")
        if batch.record_count():
            pending.append(await producer.send_batch(batch, topic, partition=partition))
    return pending
