"""The ingest API against the real Kafka: what is accepted arrives once, in order; the rest nowhere.

Each test gets its own 6-partition topic and runs the app in-process (lifespan + ASGI transport).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from recsys.config import Settings
from recsys.events.v1 import events_pb2
from recsys_ingest.convert import from_proto
from recsys_ingest.schema import validate_event
from tests.ingest_support import (
    API_KEY,
    JSON_HEADERS,
    consume_all,
    create_topic,
    delete_topic,
    end_offsets,
    event,
    ingest_settings,
    running_ingest,
)

pytestmark = pytest.mark.integration

Ingest = tuple[FastAPI, httpx.AsyncClient]


@pytest.fixture
async def topic(infra: Settings, unique: str) -> AsyncIterator[str]:
    name = f"test.ingest.{unique}"
    await create_topic(infra, name, partitions=6)
    yield name
    await delete_topic(infra, name)


@pytest.fixture
async def ingest(infra: Settings, topic: str) -> AsyncIterator[Ingest]:
    # Small limits so that the 413 cases stay small.
    settings = ingest_settings(infra, topic, max_batch_events=50, max_body_bytes=64 * 1024)
    async with running_ingest(settings) as running:
        yield running


async def post(client: httpx.AsyncClient, events: list[Any]) -> httpx.Response:
    return await client.post(
        "/v1/events", content=orjson.dumps({"events": events}), headers=JSON_HEADERS
    )


async def test_posted_events_arrive_exactly_once_in_per_user_order(
    infra: Settings, topic: str, ingest: Ingest
) -> None:
    _, client = ingest
    rng = random.Random(4)
    users = [f"user-{i}" for i in range(12)]
    sent: dict[str, list[str]] = defaultdict(list)
    by_id: dict[str, dict[str, Any]] = {}
    for _ in range(10):  # batches, each mixing users and event types
        batch = []
        for _ in range(40):
            user = rng.choice(users)
            kind = rng.choice(
                ["view", "play", "pause", "complete", "rate", "search", "skip", "impression"]
            )
            body = event(kind, user_id=user, occurred_at=1714564800000 + len(by_id))
            batch.append(body)
            sent[user].append(body["event_id"])
            by_id[body["event_id"]] = body
        response = await post(client, batch)
        assert response.status_code == 202, response.text
        result = response.json()
        assert (result["accepted"], result["rejected"]) == (40, 0)
        assert [r["event_id"] for r in result["results"]] == [e["event_id"] for e in batch]
        assert all(r["status"] == "accepted" and "errors" not in r for r in result["results"])

    records = await consume_all(infra, topic)
    received: dict[str, list[str]] = defaultdict(list)
    partitions_of: dict[str, set[int]] = defaultdict(set)
    for record in records:
        message = events_pb2.Event.FromString(record.value)
        assert record.key == message.user_id.encode()
        received[message.user_id].append(message.event_id)
        partitions_of[message.user_id].add(record.partition)
        # The record holds exactly what the client sent (as the contract model).
        assert from_proto(message) == validate_event(by_id[message.event_id], 0)
        assert message.received_at.seconds > 0

    assert len(records) == 400
    assert received == sent  # every event once; each member's in the order sent
    assert all(len(p) == 1 for p in partitions_of.values())
    assert len({p for ps in partitions_of.values() for p in ps}) > 1  # spread over partitions


async def test_mixed_batch_produces_the_valid_and_lists_the_invalid(
    infra: Settings, topic: str, ingest: Ingest
) -> None:
    _, client = ingest
    good = [
        event("play", user_id="a"),
        event("search", user_id="b"),
        event("rate", user_id="a", rating=1),
    ]
    bad_rating = event("rate", rating=7)
    bad_many = event("impression", title_ids=["ok", "not ok"], country="us")
    response = await post(client, [good[0], bad_rating, good[1], bad_many, {"junk": True}, good[2]])

    assert response.status_code == 202
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (3, 3)
    outcome = {r["index"]: r for r in result["results"]}
    assert [outcome[i]["status"] for i in range(6)] == [
        "accepted",
        "rejected",
        "accepted",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert outcome[1]["event_id"] == bad_rating["event_id"]
    assert [e["loc"] for e in outcome[1]["errors"]] == ["events[1].rating"]
    assert {e["loc"] for e in outcome[3]["errors"]} == {
        "events[3].country",
        "events[3].title_ids[1]",
    }
    assert outcome[4]["event_id"] is None
    assert {e["loc"] for e in outcome[4]["errors"]} >= {"events[4].event_type"}

    records = await consume_all(infra, topic)
    produced = [events_pb2.Event.FromString(r.value).event_id for r in records]
    assert sorted(produced) == sorted(e["event_id"] for e in good)


def _body(events: list[Any]) -> bytes:
    return orjson.dumps({"events": events})


BAD_REQUESTS: dict[str, tuple[int, dict[str, str], bytes]] = {
    "not json": (400, JSON_HEADERS, b'{"events": [}'),
    "not utf-8": (400, JSON_HEADERS, b'{"events": ["\xff"]}'),
    "json array": (400, JSON_HEADERS, b"[]"),
    "json string": (400, JSON_HEADERS, b'"events"'),
    "no events key": (400, JSON_HEADERS, b'{"event": []}'),
    "events not a list": (400, JSON_HEADERS, b'{"events": {"event_id": "x"}}'),
    "empty events": (400, JSON_HEADERS, b'{"events": []}'),
    "empty body": (400, JSON_HEADERS, b""),
    "no api key": (401, {"Content-Type": "application/json"}, _body([event()])),
    "unknown api key": (401, {**JSON_HEADERS, "X-API-Key": "nope"}, _body([event()])),
    "body too large": (413, JSON_HEADERS, _body([event("search", padding="x" * 70_000)])),
    "too many events": (413, JSON_HEADERS, _body([event() for _ in range(51)])),
    "text/plain": (415, {**JSON_HEADERS, "Content-Type": "text/plain"}, _body([event()])),
    "form": (
        415,
        {**JSON_HEADERS, "Content-Type": "application/x-www-form-urlencoded"},
        _body([event()]),
    ),
    "latin-1 charset": (
        415,
        {**JSON_HEADERS, "Content-Type": "application/json; charset=latin-1"},
        _body([event()]),
    ),
    "no content type": (415, {"X-API-Key": API_KEY}, _body([event()])),
    "all invalid": (422, JSON_HEADERS, _body([event("rate", rating=0), event(user_id="")])),
    "deeply nested": (
        422,
        JSON_HEADERS,
        b'{"events": [{"event_type": "play", "x": ' + b"[" * 600 + b"]" * 600 + b"}]}",
    ),
    "bad content-length": (400, {**JSON_HEADERS, "Content-Length": "2x"}, b"{}"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
async def test_bad_requests_get_their_status_and_produce_nothing(
    infra: Settings, topic: str, ingest: Ingest, case: str
) -> None:
    _, client = ingest
    status, headers, content = BAD_REQUESTS[case]
    before = await end_offsets(infra, topic)
    response = await client.post("/v1/events", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    if case == "all invalid":
        result = response.json()
        assert (result["accepted"], result["rejected"]) == (0, 2)
        assert [[e["loc"] for e in r["errors"]] for r in result["results"]] == [
            ["events[0].rating"],
            ["events[1].user_id"],
        ]
    elif case == "deeply nested":
        (result,) = response.json()["results"]
        assert result["errors"] == [{"loc": "events[0]", "msg": "nested too deeply"}]
    else:
        assert response.json()["detail"]
    assert await end_offsets(infra, topic) == before
    assert sum(before.values()) == 0


async def test_a_declared_body_over_the_limit_is_refused_before_reading(ingest: Ingest) -> None:
    _, client = ingest
    headers = {**JSON_HEADERS, "Content-Length": str(10**9)}
    response = await client.post("/v1/events", content=b"{}", headers=headers)
    assert response.status_code == 413


async def test_an_oversized_event_is_rejected_alone(
    infra: Settings, topic: str, ingest: Ingest
) -> None:
    _, client = ingest
    small, big = event(), event("view", notes="n" * 9000)
    response = await post(client, [small, big])
    assert response.status_code == 202
    (_, rejected) = response.json()["results"]
    assert rejected["errors"][0]["loc"] == "events[1]"
    records = await consume_all(infra, topic)
    assert [events_pb2.Event.FromString(r.value).event_id for r in records] == [small["event_id"]]


async def test_health_readiness_and_metrics(ingest: Ingest) -> None:
    _, client = ingest
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"

    await post(client, [event("play"), event("play"), event("rate", rating=11)])
    await client.post("/v1/events", content=b"[]", headers=JSON_HEADERS)
    await client.post("/v1/events", content=_body([event()]), headers={"X-API-Key": "wrong"})
    text = (await client.get("/metrics")).text
    for line in [
        'recsys_ingest_events_accepted_total{event_type="play"} 2.0',
        'recsys_ingest_events_rejected_total{event_type="rate",reason="less_than_equal"} 1.0',
        'recsys_ingest_requests_total{status="202"} 1.0',
        'recsys_ingest_requests_total{status="400"} 1.0',
        'recsys_ingest_requests_total{status="401"} 1.0',
        "recsys_ingest_produce_seconds_count 1.0",
        'recsys_ingest_batch_events_bucket{le="5.0"} 1.0',
        'recsys_ingest_request_seconds_count{status="202"} 1.0',
        "recsys_ingest_kafka_ready 1.0",
    ]:
        assert line in text, line


async def test_openapi_docs_are_served(ingest: Ingest) -> None:
    _, client = ingest
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    assert "EventBatch" in spec["components"]["schemas"]
