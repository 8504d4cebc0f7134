"""The real path, as a user runs it: `recsys import` → the ingest service process → Kafka.

The ingest service is started by `recsys services` machinery (a subprocess on a free port, its
own state directory) and publishes to a topic of this test's own.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from recsys.clients.kafka import kafka_admin, kafka_consumer
from recsys.config import InfraSettings, Settings, repo_root
from recsys.events.v1 import events_pb2
from recsys.infra import manager

MOVIETWEETINGS = repo_root().parent / "shared" / "data" / "movietweetings-100k"
RATINGS = 200  # each rating becomes a play, a completion and a rating


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def ingest(
    infra: Settings, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    topic = f"test.e2e.{unique}"
    asyncio.run(_create_topic(infra, topic))
    # The service process reads its settings from the environment, like in Kubernetes.
    monkeypatch.setenv("RECSYS_INGEST__PORT", str(_free_port()))
    monkeypatch.setenv("RECSYS_INGEST__TOPIC", topic)
    settings = Settings().model_copy(update={"infra": InfraSettings(state_dir=tmp_path / "state")})
    asyncio.run(manager.up(settings, ["ingest"], progress=lambda _: None))
    try:
        yield settings
    finally:
        manager.down(settings, ["ingest"], progress=lambda _: None)


async def _create_topic(settings: Settings, topic: str) -> None:
    admin = kafka_admin(settings.kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1)])
    finally:
        await admin.close()


async def _consume_all(settings: Settings, topic: str, expected: int) -> list[events_pb2.Event]:
    consumer = kafka_consumer(settings.kafka, topic, group_id=f"{topic}-check")
    await consumer.start()
    events: list[events_pb2.Event] = []
    try:
        async with asyncio.timeout(60):
            while len(events) < expected:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    events += [events_pb2.Event.FromString(r.value) for r in records]
        # Nothing beyond the expected count is waiting either.
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(3)])
        assert sum(ends.values()) == expected
    finally:
        await consumer.stop()
    return events


def test_movietweetings_import_reaches_kafka_through_the_ingest_service(
    ingest: Settings,
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "recsys",
            "import",
            "movietweetings",
            str(MOVIETWEETINGS),
            "--limit",
            str(RATINGS),
            "--no-catalog",
            "--ingest-url",
            ingest.ingest.url,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    events = asyncio.run(_consume_all(ingest, ingest.ingest.topic, 3 * RATINGS))
    assert len({e.event_id for e in events}) == 3 * RATINGS
    kinds = {e.event_type for e in events}
    assert kinds == {
        events_pb2.EVENT_TYPE_PLAY,
        events_pb2.EVENT_TYPE_COMPLETE,
        events_pb2.EVENT_TYPE_RATE,
    }
    assert all(e.user_id.startswith("mt-u") and e.title_id.startswith("mt-") for e in events)
    assert all(1 <= e.rate.rating <= 5 for e in events if e.HasField("rate"))
