"""The recommendation API on the whole local system (tests/integration/serving/api_system.py):
a full answer and what it logs, bad requests, a play changing the next answer, and every
dependency killed in turn while requests keep coming: always 200, at the level the ladder says,
and level 0 again once the dependency is back."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from recsys.clients.kafka import kafka_consumer
from recsys.config import Settings
from recsys.events.v1 import events_pb2
from recsys.features.title_table import TITLE_FEATURES_MODEL, TitleFeatureTable
from recsys.featurestore.v1 import featurestore_pb2 as fs_pb
from recsys.featurestore.v1 import featurestore_pb2_grpc as fs_grpc
from recsys.recommendations.v1 import served_pb2
from tests.integration.serving.api_system import ApiSystem, wait_level
from tests.integration.serving.conftest import Platform

pytestmark = pytest.mark.integration

COUNTRY = "US"


@pytest.fixture
def system(api_platform: ApiSystem) -> ApiSystem:
    return api_platform


@pytest.fixture(scope="module")
def titles(platform: Platform) -> TitleFeatureTable:
    current = platform.registry.current(TITLE_FEATURES_MODEL)
    assert current is not None
    return TitleFeatureTable.load(current)


def _member(platform: Platform, n: int) -> str:
    return platform.members[n % len(platform.members)]


def _available(titles: TitleFeatureTable, title_id: str, country: str) -> bool:
    row = int(titles.rows([title_id])[0])
    return row >= 0 and country in titles.columns["available_countries"][row]


async def _records(settings: Settings, topic: str, wanted: int, match: Any) -> list[bytes]:
    """Values of ``topic`` for which ``match(value)`` holds, once ``wanted`` are found."""
    consumer = kafka_consumer(settings.kafka, topic, group_id=f"{topic}-check-{time.time_ns()}")
    await consumer.start()
    found: list[bytes] = []
    try:
        async with asyncio.timeout(60):
            while len(found) < wanted:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found += [r.value for r in records if match(r.value)]
    finally:
        await consumer.stop()
    return found


async def test_a_member_gets_a_full_list_and_it_is_logged_as_an_impression(
    system: ApiSystem, titles: TitleFeatureTable, platform: Platform, infra: Settings
) -> None:
    user = _member(platform, 0)
    response = system.get(f"/v1/recommendations/{user}", k=8, country=COUNTRY, device="tv")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["level"] == 0, body["why"]
    assert body["level_name"] == "full"
    assert body["why"] == []
    ids = [item["id"] for item in body["items"]]
    assert len(ids) == 8
    assert len(set(ids)) == 8
    assert all(_available(titles, t, COUNTRY) for t in ids)
    scores = [item["score"] for item in body["items"]]
    assert all(isinstance(s, float) for s in scores)
    # Names come with the published title table; a name is not the id.
    assert all(item["title"] and item["title"] != item["id"] for item in body["items"])
    assert all(item["genres"] for item in body["items"])
    assert {item["reason"] for item in body["items"]} <= {"ranked", "new release", "diversity"}
    registry = platform.registry
    assert body["models"]["candidates"] == registry.current_token("two_tower")
    assert body["models"]["ranker"] == registry.current_token("ranker")
    assert body["config_version"]  # the shipped experiments configuration answered
    timing = response.headers["server-timing"]
    for stage in ("experiments", "features", "candidates", "ranking", "postrank", "total"):
        assert f"{stage};dur=" in timing
        assert stage in body["timing_ms"]

    # The list reaches Kafka twice: the served record and the impression event.
    request_id = body["request_id"]
    served = await _records(infra, system.topics["served"], 1, lambda v: request_id.encode() in v)
    record = served_pb2.ServedRecommendations.FromString(served[0])
    assert record.user_id == user
    assert [i.title_id for i in record.items] == ids
    assert record.ranker_model_version == body["models"]["ranker"]
    events = await _records(infra, system.topics["events"], 1, lambda v: request_id.encode() in v)
    event = events_pb2.Event.FromString(events[0])
    assert event.event_type == events_pb2.EVENT_TYPE_IMPRESSION
    assert event.event_id == request_id
    assert list(event.impression.title_ids) == ids
    assert event.impression.row == "api"


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/v1/recommendations/bad%20id", {}, 400, "user id 'bad id' is malformed"),
        ("/v1/recommendations/u1", {"k": 0}, 400, "k is 0; ask for 1 to 50 items"),
        ("/v1/recommendations/u1", {"k": 51}, 400, "k is 51"),
        ("/v1/recommendations/u1", {"k": "ten"}, 422, "valid integer"),
        ("/v1/recommendations/u1", {"country": "XX"}, 400, "country 'XX' is not"),
        ("/v1/recommendations/u1", {"country": "us"}, 400, "country 'us' is not"),
        ("/v1/recommendations/u1", {"device": "fridge"}, 400, "device 'fridge' is not one of"),
    ],
)
def test_bad_requests_get_4xx_saying_what_is_wrong(
    system: ApiSystem, path: str, params: dict[str, Any], status: int, message: str
) -> None:
    response = system.get(path, **params)
    assert response.status_code == status, response.text
    assert message in response.text


def test_a_play_posted_through_ingest_changes_the_next_answer(
    system: ApiSystem, platform: Platform
) -> None:
    user = _member(platform, 1)
    before = system.recommend(user, k=10, country=COUNTRY)
    assert before["level"] == 0, before["why"]
    played = before["items"][0]["id"]
    posted = httpx.post(
        f"{system.api_url}/v1/demo/plays",
        json={"user_id": user, "title_id": played, "country": COUNTRY, "device": "tv"},
        timeout=10,
    )
    assert posted.status_code == 202, posted.text
    deadline = time.monotonic() + 30
    after = before
    while time.monotonic() < deadline:
        after = system.recommend(user, k=10, country=COUNTRY)
        if played not in [i["id"] for i in after["items"]]:
            break
        time.sleep(0.2)
    ids_after = [i["id"] for i in after["items"]]
    assert played not in ids_after, "the played title is still recommended after 30 s"
    assert ids_after != [i["id"] for i in before["items"]]
    assert after["level"] == 0, after["why"]


def test_an_imported_movielens_member_gets_recommendations(
    system: ApiSystem, tmp_path: Path
) -> None:
    """MovieLens (ml-latest format) through `recsys import`, the ingest API and the feature
    worker, like any imported dataset: the member is served at level 0 from their features."""
    now = int(time.time())
    (tmp_path / "movies.csv").write_text(
        "movieId,title,genres\n1,Toy Story (1995),Animation|Children's|Comedy\n"
        "2,Heat (1995),Action|Crime|Thriller\n3,Casino (1995),Crime|Drama\n"
    )
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n"
        + "".join(f"4242,{m},4.0,{now - 600 + m}\n" for m in (1, 2, 3))
    )
    imported = subprocess.run(
        [
            str(Path(sys.executable).parent / "recsys"),
            *("import", "movielens", str(tmp_path), "--no-catalog"),
            *("--ingest-url", f"http://{system.services['ingest'].address}"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    member = "ml-u4242"
    deadline = time.monotonic() + 30
    watched: list[str] = []
    address = system.services["featurestore"].address
    while time.monotonic() < deadline and len(watched) < 3:
        with grpc.insecure_channel(address) as channel:
            reply = fs_grpc.FeatureStoreServiceStub(channel).GetUserFeatures(
                fs_pb.GetUserFeaturesRequest(user_id=member), timeout=5
            )
        feature = reply.features.features["recently_watched_title_ids"]
        watched = list(feature.value.string_list_value.values)
        time.sleep(0.2)
    assert sorted(watched) == ["ml-1", "ml-2", "ml-3"]
    body = wait_level(system, member, 0, country=COUNTRY)
    assert len(body["items"]) == 10
    assert body["user_id"] == member


# (dependency, the level while it is gone, the reason reported)
OUTAGES = [
    ("experiments", 1, "experiments_unavailable"),
    ("ranker", 1, "ranker_unavailable"),
    ("candidates", 2, "candidates_unavailable"),
    ("featurestore", 2, "features_unavailable"),
]


@pytest.mark.parametrize(("name", "level", "reason"), OUTAGES)
def test_a_killed_service_steps_down_the_ladder_and_back(
    system: ApiSystem, platform: Platform, name: str, level: int, reason: str
) -> None:
    user = _member(platform, 2)
    wait_level(system, user, 0, country=COUNTRY)
    # A member the API has not assigned yet (with experiments gone, one it has keeps their
    # last assignment and level 0).
    fresh = _member(platform, 10 + OUTAGES.index((name, level, reason)))
    system.kill(name)
    try:
        answers = [system.recommend(fresh, k=10, country=COUNTRY) for _ in range(20)]
        if name == "experiments":
            assert system.recommend(user, k=10, country=COUNTRY)["level"] == 0
    finally:
        system.start(name).wait_serving()
    assert {a["level"] for a in answers} == {level}, [a["why"] for a in answers]
    assert all(reason in [w["reason"] for w in a["why"]] for a in answers)
    assert all(len(a["items"]) == 10 for a in answers)
    if level == 2:
        assert {i["reason"] for a in answers for i in a["items"]} <= {
            f"popular in {COUNTRY}",
            *(
                f"popular in {g} in {COUNTRY}"
                for a in answers
                for i in a["items"]
                for g in i["genres"]
            ),
        }
    back = wait_level(system, user, 0, country=COUNTRY)
    assert back["why"] == []


def test_redis_killed_degrades_to_batch_features_then_the_last_list_when_all_else_fails(
    system: ApiSystem, platform: Platform
) -> None:
    user = _member(platform, 3)
    last = wait_level(system, user, 0, country=COUNTRY)
    system.redis.kill()
    try:
        answers = [system.recommend(user, k=10, country=COUNTRY) for _ in range(10)]
        assert {a["level"] for a in answers} == {1}, [a["why"] for a in answers]
        assert all(
            "realtime_features_unavailable" in [w["reason"] for w in a["why"]] for a in answers
        )
        # Redis and the feature store gone: no features, no fallback lists: the last list.
        system.kill("featurestore")
        try:
            emergency = [system.recommend(user, k=10, country=COUNTRY) for _ in range(10)]
            # A member this process never served: the global list it holds.
            stranger = system.recommend("u-never-served", k=5, country=COUNTRY)
        finally:
            system.start("featurestore").wait_serving()
        assert {a["level"] for a in emergency} == {3}, [a["why"] for a in emergency]
        remembered = [i["id"] for i in emergency[0]["items"]]
        assert remembered == [i["id"] for i in answers[-1]["items"]] or remembered == [
            i["id"] for i in last["items"]
        ]
        assert {i["reason"] for a in emergency for i in a["items"]} == {"your last recommendations"}
        assert stranger["level"] == 3
        assert {i["reason"] for i in stranger["items"]} == {"popular everywhere"}
        assert len(stranger["items"]) == 5
    finally:
        system.redis.start()
    wait_level(system, user, 0, country=COUNTRY)


def test_cassandra_cut_off_degrades_to_realtime_only_and_comes_back(
    system: ApiSystem, platform: Platform
) -> None:
    user = _member(platform, 4)
    wait_level(system, user, 0, country=COUNTRY)
    system.cassandra.cut()
    try:
        answers = [system.recommend(user, k=10, country=COUNTRY) for _ in range(10)]
    finally:
        system.cassandra.restore()
    assert {a["level"] for a in answers} == {1}, [a["why"] for a in answers]
    assert all("batch_features_unavailable" in [w["reason"] for w in a["why"]] for a in answers)
    assert all(len(a["items"]) == 10 for a in answers)
    wait_level(system, user, 0, country=COUNTRY)


def test_probes_metrics_and_docs(system: ApiSystem) -> None:
    assert system.get("/healthz").json() == {"status": "ok"}
    ready = system.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["versions"]["titles"]
    metrics = system.get("/metrics").text
    for name in (
        "recsys_api_request_seconds_bucket",
        "recsys_api_requests_total",
        "recsys_api_breaker_state",
        "recsys_api_stage_seconds_bucket",
        "recsys_api_degradations_total",
        "recsys_api_requests_shed_total",
    ):
        assert name in metrics, name
    assert system.get("/docs").status_code == 200
    spec = system.get("/openapi.json").json()
    assert "/v1/recommendations/{user_id}" in spec["paths"]
