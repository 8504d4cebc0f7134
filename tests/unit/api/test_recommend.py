"""The request flow and its ladder with fake dependencies (no network): which rung answers when
each dependency fails, what the answer holds, the breakers skipping a dead dependency, and the
budget cutting a slow one. The real processes: tests/integration/serving/test_api.py."""

from __future__ import annotations

import asyncio
import time
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pytest

from recsys.candidates.v1 import candidates_pb2
from recsys.catalog import GENRES
from recsys.common.v1 import common_pb2
from recsys.config import ApiSettings
from recsys.experiments.v1 import experiments_pb2
from recsys.features.title_table import publish_title_features
from recsys.featurestore.v1 import featurestore_pb2
from recsys.models import ModelRegistry
from recsys.models.fallbacks import FALLBACKS_MODEL, FallbackLists, current_key
from recsys.ranker.v1 import ranker_pb2
from recsys_api.backends import DEPENDENCIES, Backends
from recsys_api.breakers import Breaker
from recsys_api.catalog import Catalog
from recsys_api.ladder import Level
from recsys_api.recommend import Ask, Recommender, Result
from recsys_api.served import LastLists
from recsys_pipelines.fallbacks import publish_fallbacks

DAY = date(2026, 11, 28)
PREFIX = "rec:test"
# Ten drama titles (d0..d9) and five comedies (c0..c4), all in US; x0 only in FR.
TITLE_IDS = [f"d{i}" for i in range(10)] + [f"c{i}" for i in range(5)] + ["x0"]


def _table() -> pa.Table:
    return pa.table(
        {
            "title_id": TITLE_IDS,
            "title_genres": [["drama"] if t[0] == "d" else ["comedy"] for t in TITLE_IDS],
            "release_age_days": [400] * len(TITLE_IDS),
            "title_popularity_30d": [0.1] * len(TITLE_IDS),
            "title_completion_rate_90d": [0.5] * len(TITLE_IDS),
            "available_countries": [["FR"] if t == "x0" else ["US"] for t in TITLE_IDS],
        }
    )


FALLBACKS = FallbackLists(
    as_of=DAY,
    window_days=7,
    top_n=20,
    global_titles=("x0", "c4", "c3", "d9"),
    countries={"US": ("c0", "c1", "d0", "d1")},
    country_genres={"US": {"drama": ("d5", "d6")}},
)


def _failing(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="down")


class FakeMethod:
    """A stub method: answers ``reply`` (or raises ``error``, or sleeps ``delay_s``) and counts
    calls; it honours the call's timeout like gRPC does."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.error: BaseException | None = None
        self.delay_s = 0.0
        self.cut = False  # a call ran out of its timeout
        self.calls: list[Any] = []

    async def __call__(self, request: Any, *, timeout: float) -> Any:  # noqa: ASYNC109
        self.calls.append(request)
        if self.error is not None:
            raise self.error
        if self.delay_s:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.sleep(self.delay_s)
            except TimeoutError:
                self.cut = True
                raise
        return self.reply


class FakeStub:
    def __init__(self, **methods: FakeMethod) -> None:
        self.__dict__.update(methods)


class FakeRedis:
    def __init__(self) -> None:
        self.lists: dict[str, list[bytes]] = {}
        self.values: dict[str, bytes] = {}
        self.down = False

    async def get(self, key: str) -> bytes | None:
        if self.down:
            raise ConnectionError("redis down")
        return self.values.get(key)

    async def lrange(self, key: str, start: int, end: int) -> list[bytes]:
        if self.down:
            raise ConnectionError("redis down")
        return self.lists.get(key, [])[start : end + 1]


def _features(*, watched: list[str], affinity: str | None) -> common_pb2.FeatureSet:
    vector = np.zeros(len(GENRES), dtype=np.float32)
    if affinity is not None:
        vector[GENRES.index(affinity)] = 1.0
    return common_pb2.FeatureSet(
        features={
            "recently_watched_title_ids": common_pb2.Feature(
                value=common_pb2.FeatureValue(
                    string_list_value=common_pb2.StringList(values=watched)
                ),
                source=common_pb2.FEATURE_SOURCE_REDIS,
            ),
            "genre_affinity_vector": common_pb2.Feature(
                value=common_pb2.FeatureValue(
                    float_vector_value=common_pb2.FloatVector(values=vector.tolist())
                ),
                source=common_pb2.FEATURE_SOURCE_CASSANDRA,
            ),
        }
    )


class World:
    """A recommender over fakes that all answer, until a test breaks one."""

    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        registry = ModelRegistry(tmp_path / "models")
        publish_title_features(registry, _table(), DAY, {t: f"Title {t}" for t in TITLE_IDS})
        registry.promote(FALLBACKS_MODEL, publish_fallbacks(registry, FALLBACKS, {}))
        self.catalog = Catalog(registry)
        asyncio.run(self.catalog.load_initial(timeout_s=5))
        self.redis = FakeRedis()
        self.redis.values[current_key(PREFIX)] = b"g1"
        for key, titles in FALLBACKS.keys(PREFIX, "g1").items():
            self.redis.lists[key] = [t.encode() for t in titles]
        ranked_ids = [f"c{i}" for i in range(5)] + [f"d{i}" for i in range(10)]
        self.assign = FakeMethod(
            experiments_pb2.GetAssignmentsResponse(
                assignments=[
                    experiments_pb2.Assignment(experiment_id="e1", layer="ranking", variant="b")
                ],
                serving=experiments_pb2.ServingConfig(candidates=100, max_per_genre=100),
                config_version="c1",
            )
        )
        self.features = FakeMethod(
            featurestore_pb2.GetUserFeaturesResponse(
                user_id="u1", features=_features(watched=["d5"], affinity="drama")
            )
        )
        self.candidates = FakeMethod(
            candidates_pb2.GetCandidatesResponse(
                title_ids=[f"d{i}" for i in range(10)] + [f"c{i}" for i in range(5)],
                scores=[1.0 - i / 20 for i in range(15)],
                model_version="v0002",
            )
        )
        self.rank = FakeMethod(
            ranker_pb2.RankResponse(
                title_ids=ranked_ids,
                scores=[2.0 - i / 20 for i in range(15)],
                model_version="v0003",
            )
        )
        api = ApiSettings(breaker_failures=2, breaker_recovery_s=0.2, **settings)
        backends = Backends(
            experiments=FakeStub(GetAssignments=self.assign),  # type: ignore[arg-type]
            featurestore=FakeStub(GetUserFeatures=self.features),  # type: ignore[arg-type]
            candidates=FakeStub(GetCandidates=self.candidates),  # type: ignore[arg-type]
            ranker=FakeStub(Rank=self.rank),  # type: ignore[arg-type]
            redis=self.redis,  # type: ignore[arg-type]
            breakers={
                n: Breaker(n, failures=api.breaker_failures, recovery_s=api.breaker_recovery_s)
                for n in DEPENDENCIES
            },
            targets={},
            _channels={},
        )
        self.last = LastLists(100)
        self.lag_s = 0.0
        self.recommender = Recommender(
            api,
            backends,
            self.catalog,
            self.last,
            redis_prefix=PREFIX,
            loop_lag_s=lambda: self.lag_s,
        )

    def ask(self, user: str = "u1", k: int = 4) -> Result:
        ask = Ask(user_id=user, k=k, country="US", device="tv")
        return asyncio.run(self.recommender.recommend(ask, time.perf_counter()))


def _ids(result: Result) -> list[str]:
    return [i.title_id for i in result.served.items]


def _reasons(result: Result) -> list[str]:
    return [s.reason.value for s in result.steps.steps]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_everything_up_serves_the_rankers_order_at_level_0(world: World) -> None:
    result = world.ask()
    assert result.level is Level.FULL
    assert _ids(result) == ["c0", "c1", "c2", "c3"]
    assert [i.reason for i in result.served.items] == ["ranked"] * 4
    assert result.served.ranker_model_version == "v0003"
    assert result.served.candidates_model_version == "v0002"
    assert [a.variant for a in result.served.assignments] == ["b"]
    assert result.served.config_version == "c1"
    assert set(result.timings_ms) == {
        "experiments",
        "features",
        "candidates",
        "ranking",
        "postrank",
    }
    # The variant's serving parameters reached the calls.
    assert world.candidates.calls[0].limit == 100
    assert world.rank.calls[0].title_ids == world.candidates.reply.title_ids


def test_experiments_down_serves_the_defaults_at_level_1(world: World) -> None:
    world.assign.error = _failing(grpc.StatusCode.UNAVAILABLE)
    result = world.ask()
    assert result.level is Level.DEGRADED
    assert _reasons(result) == ["experiments_unavailable"]
    assert world.candidates.calls[0].limit == 500  # the default candidate count
    assert len(result.served.assignments) == 0


def test_a_member_assigned_before_keeps_their_variant_while_experiments_is_down(
    world: World,
) -> None:
    world.ask("u1")
    world.assign.error = _failing(grpc.StatusCode.UNAVAILABLE)
    again = world.ask("u1")
    assert again.level is Level.FULL
    assert [a.variant for a in again.served.assignments] == ["b"]
    assert world.ask("u2").level is Level.DEGRADED  # never assigned: the defaults


def test_ranker_down_serves_retrieval_order_at_level_1(world: World) -> None:
    world.rank.error = _failing(grpc.StatusCode.UNAVAILABLE)
    result = world.ask()
    assert result.level is Level.DEGRADED
    assert _reasons(result) == ["ranker_unavailable"]
    assert _ids(result) == ["d0", "d1", "d2", "d3"]
    assert result.served.ranker_model_version == ""


def test_feature_tiers_missing_are_level_1_and_say_which(world: World) -> None:
    world.features.reply.realtime_unavailable = True
    world.features.reply.batch_unavailable = True
    result = world.ask()
    assert result.level is Level.DEGRADED
    assert _reasons(result) == ["realtime_features_unavailable", "batch_features_unavailable"]


def test_candidates_down_serves_the_popular_lists_without_what_was_watched(world: World) -> None:
    world.candidates.error = _failing(grpc.StatusCode.UNAVAILABLE)
    result = world.ask(k=5)
    assert result.level is Level.FALLBACK
    assert _reasons(result) == ["candidates_unavailable"]
    # The favourite genre's list interleaved with the country's; d5 was just watched.
    assert _ids(result) == ["c0", "d6", "c1", "d0", "d1"]
    assert [i.reason for i in result.served.items][:2] == [
        "popular in US",
        "popular in drama in US",
    ]
    assert not world.rank.calls


def test_features_down_skips_candidates_and_serves_the_countrys_list(world: World) -> None:
    world.features.error = _failing(grpc.StatusCode.DEADLINE_EXCEEDED)
    result = world.ask()
    assert result.level is Level.FALLBACK
    assert _ids(result) == ["c0", "c1", "d0", "d1"]
    assert not world.candidates.calls


def test_with_redis_gone_too_the_last_list_then_the_global_one(world: World) -> None:
    first = world.ask("u1")
    world.features.error = _failing(grpc.StatusCode.UNAVAILABLE)
    world.redis.down = True
    again = world.ask("u1")
    assert again.level is Level.EMERGENCY
    assert _reasons(again) == ["features_unavailable", "fallback_unavailable"]
    assert _ids(again) == _ids(first)
    assert {i.reason for i in again.served.items} == {"your last recommendations"}
    stranger = world.ask("u2", k=3)
    assert stranger.level is Level.EMERGENCY
    assert _ids(stranger) == ["c4", "c3", "d9"]  # x0 is not available in US
    assert {i.reason for i in stranger.served.items} == {"popular everywhere"}


def test_an_open_breaker_skips_the_dependency_until_it_recovers(world: World) -> None:
    world.rank.error = _failing(grpc.StatusCode.UNAVAILABLE)
    for _ in range(2):  # breaker_failures
        world.ask()
    calls = len(world.rank.calls)
    skipped = world.ask()
    assert len(world.rank.calls) == calls
    assert "ranker circuit open" in skipped.steps.steps[0].detail
    world.rank.error = None
    time.sleep(0.25)  # breaker_recovery_s
    assert world.ask().level is Level.FULL
    assert len(world.rank.calls) == calls + 1


def test_answers_that_blame_the_request_do_not_open_the_breaker(world: World) -> None:
    world.rank.error = _failing(grpc.StatusCode.NOT_FOUND)
    for _ in range(4):
        assert world.ask().level is Level.DEGRADED
    assert len(world.rank.calls) == 4


def test_a_slow_dependency_is_cut_at_its_stage_cap(tmp_path: Path) -> None:
    world = World(tmp_path, ranking_ms=20.0)
    world.rank.delay_s = 0.5
    result = world.ask()
    assert result.level is Level.DEGRADED
    assert "no answer within 20 ms" in result.steps.steps[0].detail
    assert world.rank.cut  # the call was given its cap, not the 0.5 s it wanted


def test_a_late_event_loop_serves_the_fallback_lists_without_calling_anyone(
    world: World,
) -> None:
    world.lag_s = 0.030  # overload_lag_ms is 20
    result = world.ask()
    assert result.level is Level.FALLBACK
    assert _reasons(result) == ["overloaded"]
    assert _ids(result) == ["c0", "c1", "d0", "d1"]
    assert not world.assign.calls
    assert not world.features.calls
    world.lag_s = 0.0
    assert world.ask().level is Level.FULL


def test_warm_up_runs_the_chain_without_experiments(world: World) -> None:
    assert asyncio.run(world.recommender.warm_up("US", rounds=2)) == 2
    assert len(world.rank.calls) == 2
    assert not world.assign.calls  # no exposure for a made-up member
    world.candidates.error = _failing(grpc.StatusCode.UNAVAILABLE)
    assert asyncio.run(world.recommender.warm_up("US", rounds=2)) == 0


def test_no_time_left_means_no_call(tmp_path: Path) -> None:
    world = World(tmp_path, budget_ms=5.0, reserve_ms=4.5)
    result = world.ask()
    assert not world.candidates.calls
    assert result.level is Level.FALLBACK or result.level is Level.EMERGENCY
    assert any("no time left" in s.detail for s in result.steps.steps)
