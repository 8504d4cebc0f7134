"""The experiments service as a process against the real Kafka and Cassandra: its answers are
the library's assignment, every exposure reaches the topic, the first one per member and
experiment is recorded once, a new configuration is picked up without a restart and a bad one
leaves the running one serving."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recsys.clients.cassandra import connect_cassandra
from recsys.clients.kafka import kafka_consumer
from recsys.config import Settings
from recsys.experiments.v1 import experiments_pb2 as pb
from recsys.experiments.v1 import experiments_pb2_grpc as pb_grpc
from recsys.infra.cql_migrations import apply_migrations, drop_keyspace
from recsys_experiments.assignment import assign
from recsys_experiments.config import parse_config
from tests.features_support import create_topics, delete_topics
from tests.serving_support import ServingProcess, start_service
from tests.unit.experiments.test_assignment import CONFIG

pytestmark = pytest.mark.integration

MEMBERS = [f"m{i:05d}" for i in range(300)]


class Running:
    def __init__(self, process: ServingProcess, config: Path, keyspace: str, topic: str) -> None:
        self.process, self.config, self.keyspace, self.topic = process, config, keyspace, topic


@pytest.fixture
def running(infra: Settings, unique: str, tmp_path: Path) -> Iterator[Running]:
    keyspace, topic = f"test_exp_{unique}", f"test.exposures.{unique}"
    admin = connect_cassandra(infra.cassandra)
    apply_migrations(admin, infra.cassandra, keyspace=keyspace)
    asyncio.run(create_topics(infra, [topic], 3))
    config = tmp_path / "experiments.yaml"
    config.write_text(CONFIG)
    process = start_service(
        "experiments",
        tmp_path,
        {
            "RECSYS_EXPERIMENTS__CONFIG": str(config),
            "RECSYS_EXPERIMENTS__EXPOSURES_TOPIC": topic,
            "RECSYS_EXPERIMENTS__CONFIG_CHECK_S": "0.2",
            "RECSYS_CASSANDRA__KEYSPACE": keyspace,
        },
    )
    try:
        process.wait_serving()
        yield Running(process, config, keyspace, topic)
    finally:
        process.terminate()
        asyncio.run(delete_topics(infra, topic))
        drop_keyspace(admin, keyspace)
        admin.close()


@pytest.fixture
async def stub(running: Running) -> AsyncIterator[pb_grpc.ExperimentsServiceStub]:
    async with grpc.aio.insecure_channel(running.process.address) as channel:
        yield pb_grpc.ExperimentsServiceStub(channel)


async def _ask(stub: pb_grpc.ExperimentsServiceStub, user: str) -> pb.GetAssignmentsResponse:
    request = pb.GetAssignmentsRequest(user_id=user, country="US", device="tv")
    reply: pb.GetAssignmentsResponse = await stub.GetAssignments(request, timeout=2)
    return reply


async def _exposures(settings: Settings, topic: str, wanted: int) -> list[pb.ExposureEvent]:
    consumer = kafka_consumer(settings.kafka, topic, group_id=f"{topic}-reader")
    await consumer.start()
    found: list[pb.ExposureEvent] = []
    try:
        deadline = time.monotonic() + 30
        while len(found) < wanted and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    event = pb.ExposureEvent.FromString(record.value)
                    assert record.key == event.user_id.encode()
                    found.append(event)
    finally:
        await consumer.stop()
    return found


def _first_exposures(settings: Settings, keyspace: str) -> dict[tuple[str, str], dict[str, object]]:
    client = connect_cassandra(settings.cassandra)
    try:
        rows = client.execute_sync(f"SELECT * FROM {keyspace}.experiment_exposures")
    finally:
        client.close()
    return {(str(r["user_id"]), str(r["experiment_id"])): r for r in rows}


async def _until(check: object, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_answers_exposures_and_first_exposures(
    infra: Settings, running: Running, stub: pb_grpc.ExperimentsServiceStub
) -> None:
    config = parse_config(CONFIG)
    expected_exposures = 0
    for user in MEMBERS:
        reply = await _ask(stub, user)
        want = assign(config, user, country="US", device="tv")
        assert reply.holdout == want.holdout
        assert [(a.experiment_id, a.variant, a.bucket) for a in reply.assignments] == [
            (a.experiment_id, a.variant, a.bucket) for a in want.assignments
        ]
        assert reply.serving.candidates == want.serving.candidates
        assert reply.config_version == "t2"
        expected_exposures += len(want.assignments)

    events = await _exposures(infra, running.topic, expected_exposures)
    assert len(events) == expected_exposures
    assert {(e.user_id, e.experiment_id, e.variant) for e in events} == {
        (u, a.experiment_id, a.variant)
        for u in MEMBERS
        for a in assign(config, u, country="US", device="tv").assignments
    }
    pairs = {(e.user_id, e.experiment_id) for e in events}
    await _until(lambda: len(_first_exposures(infra, running.keyspace)) == len(pairs))
    first = _first_exposures(infra, running.keyspace)
    assert {k: r["variant"] for k, r in first.items()} == {
        (e.user_id, e.experiment_id): e.variant for e in events
    }

    # A new configuration moves members between variants; their first exposure stays.
    running.config.write_text(
        CONFIG.replace('version: "t2"', 'version: "t3"').replace("weight: 3", "weight: 0")
    )
    await _until(lambda: _metric(running.process, "recsys_experiments_config_version", "t3") == 1)
    user = next(
        u
        for u in MEMBERS
        if any(
            a.variant == "treat" for a in assign(config, u, country="US", device="tv").assignments
        )
    )
    moved = await _ask(stub, user)
    assert moved.config_version == "t3"
    assert ("a", "control") in {(a.experiment_id, a.variant) for a in moved.assignments}
    await asyncio.sleep(1.0)
    assert _first_exposures(infra, running.keyspace)[(user, "a")]["variant"] == "treat"


async def test_a_bad_configuration_leaves_the_running_one_serving(
    running: Running, stub: pb_grpc.ExperimentsServiceStub
) -> None:
    running.config.write_text(CONFIG.replace("percent: 1.0", "percent: 50"))
    await _until(
        lambda: _metric(running.process, "recsys_experiments_config_reloads_total", "error") == 1
    )
    reply = await _ask(stub, "m00001")
    assert reply.config_version == "t2"
    assert "config refused; the running one keeps serving" in running.process.log.read_text()
    assert "holdout.percent" in running.process.log.read_text()


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.GetAssignmentsRequest(user_id="", country="US", device="tv"), "user_id is empty"),
        (pb.GetAssignmentsRequest(user_id="u1", country="us", device="tv"), "alpha-2"),
        (pb.GetAssignmentsRequest(user_id="u1", country="US", device=""), "not a device name"),
    ],
)
async def test_bad_requests_are_invalid_argument(
    stub: pb_grpc.ExperimentsServiceStub, request_: pb.GetAssignmentsRequest, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetAssignments(request_, timeout=2)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")


def _metric(process: ServingProcess, name: str, label_value: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{process.metrics_port}/metrics").read()
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and label_value in sample.labels.values():
                return float(sample.value)
    return 0.0
