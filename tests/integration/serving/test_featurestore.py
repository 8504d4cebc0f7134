"""The feature store against the real Redis and Cassandra: what the stream job and the daily job
wrote comes back with its ages and tiers; Redis gone -> Cassandra, flagged; both gone -> the
registry's defaults, flagged; titles from the published table."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from redis.asyncio import Redis

from recsys.clients.cassandra import connect_cassandra
from recsys.common.v1 import common_pb2
from recsys.features import FEATURES, Entity
from recsys.features.online import BATCH_ROW, STATIC_ROW, USER_FEATURES, read_partition
from recsys.features.title_table import TITLE_FEATURES_MODEL, TitleFeatureTable
from recsys.featurestore.v1 import featurestore_pb2 as pb
from recsys.featurestore.v1 import featurestore_pb2_grpc as pb_grpc
from recsys.serving.features import feature_value
from recsys_features.cassandra_store import CassandraFeatureStore
from recsys_features.redis_store import RedisFeatureStore
from recsys_features.snapshot import FeatureSnapshot
from tests.integration.serving.conftest import Platform
from tests.serving_support import ServingProcess, free_port, start_service

pytestmark = pytest.mark.integration

Source = common_pb2.FeatureSource


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _snapshot(user_id: str, event_ms: int, titles: list[str]) -> FeatureSnapshot:
    """Real-time values as the stream job writes them (every registry real-time feature)."""
    values: dict[str, Any] = {}
    for name in USER_FEATURES:
        default = FEATURES[name].default
        values[name] = list(default) if isinstance(default, tuple) else default
    values.update(
        session_duration_sec=754,
        current_device_type="tv",
        current_genre_last_30min="drama",
        plays_abandoned_last_1hr=2,
        content_completion_rate_today=0.5,
        recently_watched_title_ids=titles,
    )
    return FeatureSnapshot(user_id, event_ms, values)


async def _write_stream(
    platform: Platform, redis: Redis, snap: FeatureSnapshot, written_ms: int
) -> None:
    await RedisFeatureStore(redis, platform.settings.redis.key_prefix).write(
        [snap], written_at_ms=written_ms
    )
    client = connect_cassandra(platform.settings.cassandra)
    try:
        store = CassandraFeatureStore(client, platform.settings.cassandra.keyspace)
        await store.write([snap], written_at_ms=written_ms)
    finally:
        client.close()


async def _daily_values(platform: Platform, user_id: str) -> tuple[dict[str, Any], int]:
    client = connect_cassandra(platform.settings.cassandra)
    try:
        rows = await read_partition(
            client, platform.settings.cassandra.keyspace, Entity.USER, user_id
        )
    finally:
        client.close()
    return {**rows[STATIC_ROW].values, **rows[BATCH_ROW].values}, rows[BATCH_ROW].event_time_ms


def _member(platform: Platform) -> str:
    return platform.members[0]


@pytest.fixture
async def stub(
    services: dict[str, ServingProcess],
) -> AsyncIterator[pb_grpc.FeatureStoreServiceStub]:
    async with grpc.aio.insecure_channel(services["featurestore"].address) as channel:
        yield pb_grpc.FeatureStoreServiceStub(channel)


async def test_served_features_are_what_the_jobs_wrote_with_their_ages(
    platform: Platform, redis: Redis, stub: pb_grpc.FeatureStoreServiceStub
) -> None:
    user = _member(platform)
    daily, daily_event_ms = await _daily_values(platform, user)
    now = _now_ms()
    snap = _snapshot(user, now - 1500, ["t-one", "t-two"])
    await _write_stream(platform, redis, snap, now - 1000)

    asked = _now_ms()
    reply = await stub.GetUserFeatures(pb.GetUserFeaturesRequest(user_id=user), timeout=2)
    answered = _now_ms()
    served = reply.features.features
    assert not reply.realtime_unavailable
    assert set(served) == {f.name for f in FEATURES.select(entity=Entity.USER)}
    for name in USER_FEATURES:
        feature = served[name]
        assert feature_value(name, feature.value) == snap.values[name], name
        assert feature.source == Source.FEATURE_SOURCE_REDIS, name
        assert asked - snap.event_time_ms <= feature.age_ms <= answered - snap.event_time_ms
    for name, value in daily.items():
        feature = served[name]
        got = feature_value(name, feature.value)
        assert got == pytest.approx(value), name
        assert feature.source == Source.FEATURE_SOURCE_CASSANDRA, name
        assert asked - daily_event_ms <= feature.age_ms <= answered - daily_event_ms, name

    again = await stub.GetUserFeatures(pb.GetUserFeaturesRequest(user_id=user), timeout=2)
    sources = {f.source for f in again.features.features.values()}
    assert sources == {Source.FEATURE_SOURCE_MEMORY}  # L1, inside its TTLs


async def test_a_member_nobody_wrote_gets_flagged_defaults(
    stub: pb_grpc.FeatureStoreServiceStub,
) -> None:
    reply = await stub.GetUserFeatures(
        pb.GetUserFeaturesRequest(
            user_id="never-seen", feature_names=["country", "watch_hours_30d"]
        ),
        timeout=2,
    )
    assert set(reply.features.features) == {"country", "watch_hours_30d"}
    for feature in reply.features.features.values():
        assert feature.source == Source.FEATURE_SOURCE_DEFAULT
        assert feature.age_ms == -1


async def test_title_features_come_from_the_published_table(
    platform: Platform, stub: pb_grpc.FeatureStoreServiceStub
) -> None:
    current = platform.registry.current(TITLE_FEATURES_MODEL)
    assert current is not None
    table = TitleFeatureTable.load(current)
    ids = [*table.title_ids, "not-a-title"]
    reply = await stub.GetTitleFeatures(pb.GetTitleFeaturesRequest(title_ids=ids), timeout=2)
    assert list(reply.title_ids) == ids
    assert reply.table_version == current.version
    columns = {c.name: c for c in reply.columns}
    assert list(columns["available_countries"].is_default) == [False] * len(table) + [True]
    popularity = list(columns["title_popularity_30d"].float64_values.values)
    assert popularity[:-1] == pytest.approx(list(table.columns["title_popularity_30d"]))
    flat = columns["title_genres"].string_list_values
    values = iter(flat.values)
    genres = [[next(values) for _ in range(n)] for n in flat.lengths]
    assert genres[:-1] == table.columns["title_genres"]
    assert genres[-1] == []


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.GetUserFeaturesRequest(user_id=""), "user_id is empty"),
        (pb.GetUserFeaturesRequest(user_id="bad id"), "is malformed"),
        (pb.GetUserFeaturesRequest(user_id="u1", feature_names=["nope"]), "unknown user feature"),
        (pb.GetTitleFeaturesRequest(), "title_ids is empty"),
        (pb.GetTitleFeaturesRequest(title_ids=["t"] * 1001), "1001 title_ids in one call"),
        (pb.GetTitleFeaturesRequest(title_ids=["t1"], feature_names=["country"]), "unknown title"),
    ],
)
async def test_bad_requests_are_invalid_argument_saying_what(
    stub: pb_grpc.FeatureStoreServiceStub, request_: Any, message: str
) -> None:
    method = (
        stub.GetUserFeatures
        if isinstance(request_, pb.GetUserFeaturesRequest)
        else stub.GetTitleFeatures
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await method(request_, timeout=2)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")


@pytest.fixture
def private_redis(platform: Platform) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own, so stopping it leaves everyone else's alone."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is installed by `recsys infra up`"
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while (
        subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False
        ).stdout.strip()
        != b"PONG"
    ):
        assert time.monotonic() < deadline, "private redis-server did not start"
        time.sleep(0.05)
    yield port, process
    process.kill()
    process.wait()


async def test_redis_stopped_serves_cassandra_flagged_then_both_gone_serves_defaults(
    platform: Platform, private_redis: tuple[int, subprocess.Popen[bytes]]
) -> None:
    port, redis_process = private_redis
    env = {
        **platform.env,
        "RECSYS_REDIS__PORT": str(port),
        "RECSYS_FEATURESTORE__REALTIME_CACHE_TTL_S": "0",
        "RECSYS_FEATURESTORE__BATCH_CACHE_TTL_S": "0",
    }
    featurestore = start_service("featurestore", platform.root, env)
    try:
        featurestore.wait_serving()
        user = _member(platform)
        now = _now_ms()
        snap = _snapshot(user, now - 800, ["t-three"])
        redis = Redis(host="127.0.0.1", port=port)
        await _write_stream(platform, redis, snap, now - 500)
        await redis.aclose()
        async with grpc.aio.insecure_channel(featurestore.address) as channel:
            stub = pb_grpc.FeatureStoreServiceStub(channel)
            request = pb.GetUserFeaturesRequest(user_id=user)
            before = await stub.GetUserFeatures(request, timeout=2)
            assert not before.realtime_unavailable
            assert not before.batch_unavailable
            assert before.features.features["session_duration_sec"].source == (
                Source.FEATURE_SOURCE_REDIS
            )

            redis_process.kill()
            redis_process.wait()
            during = await stub.GetUserFeatures(request, timeout=2)
            assert during.realtime_unavailable
            assert not during.batch_unavailable
            for name in USER_FEATURES:
                feature = during.features.features[name]
                assert feature.source == Source.FEATURE_SOURCE_CASSANDRA, name
                assert feature_value(name, feature.value) == snap.values[name], name
            assert during.features.features["country"].source == Source.FEATURE_SOURCE_CASSANDRA
    finally:
        featurestore.terminate()

    # Neither store: nothing listens on either port. Still an answer: the defaults, flagged.
    nowhere = start_service(
        "featurestore",
        platform.root,
        {**env, "RECSYS_CASSANDRA__PORT": str(free_port())},
    )
    try:
        nowhere.wait_serving()
        async with grpc.aio.insecure_channel(nowhere.address) as channel:
            reply = await pb_grpc.FeatureStoreServiceStub(channel).GetUserFeatures(
                pb.GetUserFeaturesRequest(user_id=user), timeout=2
            )
        assert reply.realtime_unavailable
        assert reply.batch_unavailable
        assert {f.source for f in reply.features.features.values()} == {
            Source.FEATURE_SOURCE_DEFAULT
        }
    finally:
        nowhere.terminate()
