"""One recommendation request, inside its budget, down the ladder when a stage fails.

    recommender = Recommender(settings, backends, catalog, last_lists)
    result = await recommender.recommend(Ask("u42", k=10, country="US", device="tv"), started)

1. Assignment (experiments) and the member's features (feature store), in parallel.
2. Candidates (two-tower retrieval) with those features and the variant's model and count.
3. Ranking (multi-task ranker) with the variant's model and objective weights.
4. Post-ranking: availability, new-release boost, genre diversity and caps (recsys_api.postrank).

Every call gets what is left of the budget (``budget_ms`` from the request's arrival, less
``reserve_ms`` kept for post-ranking and the answer), capped by its stage's share; a call that
cannot get at least a millisecond is not made. Each dependency has a circuit breaker: while it is
open the stage is skipped at once. What a failure costs (docs/api.md has the table):

- experiments: the member's last assignment if this process has one (minutes old at most),
  else the default serving parameters, level 1;
- real-time or batch features unreadable (the feature store says so): level 1;
- ranker: the candidates in retrieval order, level 1;
- features or candidates: the precomputed popular lists of the member's country (and favourite
  genre, when the features came) from Redis, level 2;
- those too: the member's last personalised list from this process, else the global list it
  holds from the registry, level 3. Level 3 always answers.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

import grpc
import numpy as np
from cachetools import TTLCache

from recsys.candidates.v1 import candidates_pb2
from recsys.catalog import GENRES
from recsys.common.v1 import common_pb2
from recsys.config import ApiSettings
from recsys.experiments.v1 import experiments_pb2
from recsys.featurestore.v1 import featurestore_pb2
from recsys.models.fallbacks import read_fallback
from recsys.ranker.v1 import ranker_pb2
from recsys.recommendations.v1 import served_pb2
from recsys_api.backends import Backends
from recsys_api.catalog import Catalog, Titles
from recsys_api.ladder import LEVEL_PROTO, Degradation, Level, Reason
from recsys_api.postrank import Pick, PostRankParams, post_rank
from recsys_api.served import LastLists

__all__ = ["DEFAULT_SERVING", "Ask", "Recommender", "Result"]

R = TypeVar("R")

# What a member gets when the experiments service cannot say: the shipped configuration's
# defaults (services/experiments/config/experiments.yaml). Zero weights: the ranker version's own.
DEFAULT_SERVING: Final = experiments_pb2.ServingConfig(
    candidates=500, diversity=0.2, new_release_boost=0.1, max_per_genre=4
)
MIN_CALL_S: Final = 0.001
# Ranked titles handed to post-ranking: enough for the caps and the diversity to choose from.
MIN_DEPTH: Final = 50
DEPTH_PER_ITEM: Final = 4

WARM_UP_MEMBER: Final = "api-warm-up"
_WATCHED: Final = "recently_watched_title_ids"
_AFFINITY: Final = "genre_affinity_vector"


@dataclass(frozen=True, slots=True)
class Ask:
    """A checked request."""

    user_id: str
    k: int
    country: str
    device: str


@dataclass(slots=True)
class Result:
    served: served_pb2.ServedRecommendations
    steps: Degradation
    timings_ms: dict[str, float]
    titles: Titles | None

    @property
    def level(self) -> Level:
        return self.steps.level


class _Budget:
    def __init__(self, started: float, settings: ApiSettings) -> None:
        self.deadline = started + settings.budget_ms / 1000
        self.reserve_s = settings.reserve_ms / 1000

    def timeout(self, cap_ms: float) -> float | None:
        """Seconds a call may take now, or None when less than MIN_CALL_S is left."""
        left = min(cap_ms / 1000, self.deadline - time.perf_counter() - self.reserve_s)
        return left if left >= MIN_CALL_S else None


class Recommender:
    def __init__(
        self,
        settings: ApiSettings,
        backends: Backends,
        catalog: Catalog,
        last: LastLists,
        *,
        redis_prefix: str,
        loop_lag_s: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self._loop_lag_s = loop_lag_s
        self._settings = settings
        self._backends = backends
        self._catalog = catalog
        self._last = last
        self._redis_prefix = redis_prefix
        # Stale-if-error: the member's last assignment, for when the experiments service fails.
        self._assignments: TTLCache[str, experiments_pb2.GetAssignmentsResponse] | None = (
            TTLCache(settings.assignment_cache_members, settings.assignment_cache_s)
            if settings.assignment_cache_s > 0
            else None
        )

    async def recommend(self, ask: Ask, started: float) -> Result:
        budget = _Budget(started, self._settings)
        steps = Degradation()
        timings: dict[str, float] = {}
        titles = self._catalog.titles()
        lag_ms = self._loop_lag_s() * 1000
        if lag_ms > self._settings.overload_lag_ms:
            # Saturated: the cheap rung now, before the queue behind us outgrows the budget.
            steps.step(Reason.OVERLOADED, f"event loop {lag_ms:.0f} ms late")
            assigned, features = None, None
        else:
            assigned, features = await asyncio.gather(
                self._assign(ask, budget, steps, timings),
                self._features(ask, budget, steps, timings),
            )
        serving = assigned.serving if assigned is not None else DEFAULT_SERVING
        served = served_pb2.ServedRecommendations(
            request_id=str(uuid.uuid4()),
            user_id=ask.user_id,
            country=ask.country,
            device=ask.device,
            served_at_ms=time.time_ns() // 1_000_000,
        )
        if assigned is not None:
            served.assignments.extend(assigned.assignments)
            served.holdout = assigned.holdout
            served.config_version = assigned.config_version
        picks: list[Pick] | None = None
        if features is not None and titles is not None:
            picks = await self._personalised(
                ask, features, serving, titles, served, budget, steps, timings
            )
        if picks is None:
            picks = await self._popular(ask, features, titles, budget, steps, timings)
        if picks is None:
            picks = self.emergency(ask, titles)
        items = [_item(p) for p in picks]
        served.items.extend(items)  # copies: the list kept below stays apart from `served`
        if steps.level <= Level.DEGRADED:  # personalised: what level 3 falls back to later
            self._last.remember(ask.user_id, items)
        served.level = LEVEL_PROTO[steps.level]
        served.reasons.extend(s.reason.value for s in steps.steps)
        return Result(served, steps, timings, titles)

    async def warm_up(self, country: str, *, rounds: int = 3, timeout_s: float = 2.0) -> int:
        """Run features → candidates → ranking for a made-up member (no experiment, so no
        exposure is recorded), so that the services' first-call costs (a store's prepared
        statements, a model's first run) are not paid by members. Returns the rounds that
        went through; failures are the ladder's business later."""
        backends, done = self._backends, 0
        for _ in range(rounds):
            try:
                features = await backends.featurestore.GetUserFeatures(
                    featurestore_pb2.GetUserFeaturesRequest(user_id=WARM_UP_MEMBER),
                    timeout=timeout_s,
                )
                found = await backends.candidates.GetCandidates(
                    candidates_pb2.GetCandidatesRequest(
                        user_id=WARM_UP_MEMBER, country=country, features=features.features
                    ),
                    timeout=timeout_s,
                )
                if found.title_ids:
                    await backends.ranker.Rank(
                        ranker_pb2.RankRequest(
                            user_id=WARM_UP_MEMBER,
                            country=country,
                            features=features.features,
                            title_ids=found.title_ids,
                            retrieval_scores=found.scores,
                            limit=MIN_DEPTH,
                        ),
                        timeout=timeout_s,
                    )
            except Exception:  # a dependency down: nothing to warm
                continue
            done += 1
        return done

    def after_error(self, ask: Ask, error: BaseException) -> Result:
        """The emergency answer when the request itself failed (a bug): never a 500."""
        steps = Degradation()
        steps.step(Reason.INTERNAL_ERROR, f"{type(error).__name__}: {error}"[:300])
        titles = self._catalog.titles()
        served = served_pb2.ServedRecommendations(
            request_id=str(uuid.uuid4()),
            user_id=ask.user_id,
            country=ask.country,
            device=ask.device,
            served_at_ms=time.time_ns() // 1_000_000,
            items=[_item(p) for p in self.emergency(ask, titles)],
            level=LEVEL_PROTO[steps.level],
            reasons=[Reason.INTERNAL_ERROR.value],
        )
        return Result(served, steps, {}, titles)

    # --- stages ----------------------------------------------------------------------------

    async def _assign(
        self, ask: Ask, budget: _Budget, steps: Degradation, timings: dict[str, float]
    ) -> experiments_pb2.GetAssignmentsResponse | None:
        request = experiments_pb2.GetAssignmentsRequest(
            user_id=ask.user_id, country=ask.country, device=ask.device
        )
        reply: experiments_pb2.GetAssignmentsResponse | None
        reply, problem = await self._call(
            "experiments",
            "experiments",
            self._backends.experiments.GetAssignments,
            request,
            self._settings.experiments_ms,
            budget,
            timings,
        )
        cache = self._assignments
        if reply is not None:
            if cache is not None:
                cache[ask.user_id] = reply
            return reply
        stale: experiments_pb2.GetAssignmentsResponse | None = (
            cache.get(ask.user_id) if cache is not None else None
        )
        if stale is not None:  # their variant as it was minutes ago: still the full answer
            return stale
        steps.step(Reason.EXPERIMENTS_UNAVAILABLE, problem)
        return None

    async def _features(
        self, ask: Ask, budget: _Budget, steps: Degradation, timings: dict[str, float]
    ) -> featurestore_pb2.GetUserFeaturesResponse | None:
        reply: featurestore_pb2.GetUserFeaturesResponse | None
        reply, problem = await self._call(
            "featurestore",
            "features",
            self._backends.featurestore.GetUserFeatures,
            featurestore_pb2.GetUserFeaturesRequest(user_id=ask.user_id),
            self._settings.features_ms,
            budget,
            timings,
        )
        if reply is None:
            steps.step(Reason.FEATURES_UNAVAILABLE, problem)
            return None
        if reply.realtime_unavailable:
            steps.step(
                Reason.REALTIME_FEATURES_UNAVAILABLE,
                "Redis unreadable: real-time values from the durable copy or defaults",
            )
        if reply.batch_unavailable:
            steps.step(
                Reason.BATCH_FEATURES_UNAVAILABLE, "Cassandra unreadable: daily values are defaults"
            )
        return reply

    async def _personalised(
        self,
        ask: Ask,
        features: featurestore_pb2.GetUserFeaturesResponse,
        serving: experiments_pb2.ServingConfig,
        titles: Titles,
        served: served_pb2.ServedRecommendations,
        budget: _Budget,
        steps: Degradation,
        timings: dict[str, float],
    ) -> list[Pick] | None:
        """Candidates, ranking and post-ranking; None when the ladder must go to level 2."""
        found, problem = await self._call(
            "candidates",
            "candidates",
            self._backends.candidates.GetCandidates,
            candidates_pb2.GetCandidatesRequest(
                user_id=ask.user_id,
                country=ask.country,
                features=features.features,
                limit=serving.candidates,
                model_version=serving.candidates_model_version,
            ),
            self._settings.candidates_ms,
            budget,
            timings,
        )
        if found is None:
            steps.step(Reason.CANDIDATES_UNAVAILABLE, problem)
            return None
        if not found.title_ids:
            steps.step(Reason.NO_CANDIDATES, f"no title available in {ask.country} to retrieve")
            return None
        served.candidates_model_version = found.model_version
        depth = min(len(found.title_ids), max(MIN_DEPTH, DEPTH_PER_ITEM * ask.k))
        ranked_reply, problem = await self._call(
            "ranker",
            "ranking",
            self._backends.ranker.Rank,
            ranker_pb2.RankRequest(
                user_id=ask.user_id,
                country=ask.country,
                features=features.features,
                title_ids=found.title_ids,
                retrieval_scores=found.scores,
                model_version=serving.ranker_model_version,
                weights=serving.weights,
                limit=depth,
            ),
            self._settings.ranking_ms,
            budget,
            timings,
        )
        ranked: Sequence[tuple[str, float]]
        if ranked_reply is None:
            steps.step(Reason.RANKER_UNAVAILABLE, f"{problem}; candidates in retrieval order")
            ranked = list(zip(found.title_ids[:depth], found.scores[:depth], strict=True))
        else:
            served.ranker_model_version = ranked_reply.model_version
            ranked = list(zip(ranked_reply.title_ids, ranked_reply.scores, strict=True))
        started = time.perf_counter()
        picks = post_rank(
            ranked,
            titles.info,
            country=ask.country,
            params=PostRankParams(
                k=ask.k,
                diversity=serving.diversity,
                new_release_boost=serving.new_release_boost,
                max_per_genre=serving.max_per_genre,
            ),
        )
        timings["postrank"] = _ms(started)
        if not picks:
            steps.step(Reason.NO_CANDIDATES, f"no candidate is available in {ask.country}")
            return None
        return picks

    async def _popular(
        self,
        ask: Ask,
        features: featurestore_pb2.GetUserFeaturesResponse | None,
        titles: Titles | None,
        budget: _Budget,
        steps: Degradation,
        timings: dict[str, float],
    ) -> list[Pick] | None:
        """Level 2: the popular titles of the member's country (and favourite genre) from
        Redis, less what they just watched; None when Redis cannot give them."""
        genre = _favourite_genre(features)
        watched = _watched(features)
        depth = max(MIN_DEPTH, DEPTH_PER_ITEM * ask.k)
        redis = self._backends.redis
        prefix = self._redis_prefix

        async def read() -> list[list[str]]:
            reads = [read_fallback(redis, prefix, ask.country, None, depth)]
            if genre is not None:
                reads.insert(0, read_fallback(redis, prefix, ask.country, genre, depth))
            return list(await asyncio.gather(*reads))

        lists, problem = await self._call(
            "redis", "fallback", _bounded(read), None, self._settings.fallback_ms, budget, timings
        )
        if lists is None:
            steps.step(Reason.FALLBACK_UNAVAILABLE, problem)
            return None
        order = [t for t in dict.fromkeys(_interleave(lists)) if t not in watched]
        if not order:
            steps.step(Reason.FALLBACK_UNAVAILABLE, f"no fallback list for {ask.country}")
            return None
        reason = f"popular in {ask.country}"
        picks = _available(order, titles, ask, reason)
        if genre is not None:
            in_genre = f"popular in {genre} in {ask.country}"
            picks = [
                Pick(
                    p.title_id,
                    p.score,
                    in_genre if _has_genre(titles, p.title_id, genre) else reason,
                )
                for p in picks
            ]
        return picks or None

    def emergency(self, ask: Ask, titles: Titles | None) -> list[Pick]:
        """Level 3: never fails. The member's last list, else the global list in memory."""
        last = self._last.get(ask.user_id)
        if last:
            return [Pick(i.title_id, i.score, "your last recommendations") for i in last[: ask.k]]
        lists = self._catalog.fallbacks()
        if lists is None:
            return []
        return _available(list(lists.global_titles), titles, ask, "popular everywhere")

    # --- calls -----------------------------------------------------------------------------

    async def _call(
        self,
        dependency: str,
        stage: str,
        method: Callable[..., Awaitable[R]],
        request: object,
        cap_ms: float,
        budget: _Budget,
        timings: dict[str, float],
    ) -> tuple[R | None, str]:
        """(the reply, "") or (None, what went wrong), through the dependency's breaker."""
        breaker = self._backends.breakers[dependency]
        if not breaker.allows():
            return None, f"{dependency} circuit open"
        timeout = budget.timeout(cap_ms)
        if timeout is None:
            return None, f"no time left for {dependency} in the budget"
        started = time.perf_counter()
        try:
            with breaker.guard():
                return await method(request, timeout=timeout), ""
        except grpc.aio.AioRpcError as exc:
            return None, f"{dependency}: {exc.code().name}: {exc.details()}"
        except TimeoutError:
            return None, f"{dependency}: no answer within {timeout * 1000:.0f} ms"
        except Exception as exc:  # a client error of any kind: degrade, never fail the request
            return None, f"{dependency}: {type(exc).__name__}: {exc}"[:300]
        finally:
            timings[stage] = _ms(started)


def _bounded(read: Callable[[], Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """A Redis read in the shape of a gRPC stub method: ``(request, timeout=)``."""

    async def call(_: object, *, timeout: float) -> R:  # noqa: ASYNC109 (a stub's signature)
        async with asyncio.timeout(timeout):
            return await read()

    return call


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _item(pick: Pick) -> served_pb2.ServedItem:
    return served_pb2.ServedItem(title_id=pick.title_id, score=pick.score, reason=pick.reason)


def _available(order: Sequence[str], titles: Titles | None, ask: Ask, reason: str) -> list[Pick]:
    """The first ``ask.k`` of ``order`` the country may show (all when titles are unknown),
    scored by rank."""
    picks: list[Pick] = []
    for title_id in order:
        info = titles.info.get(title_id) if titles is not None else None
        if titles is not None and (info is None or ask.country not in info.countries):
            continue
        picks.append(Pick(title_id, round(1.0 / (1 + len(picks)), 6), reason))
        if len(picks) == ask.k:
            break
    return picks


def _interleave(lists: Sequence[Sequence[str]]) -> list[str]:
    out: list[str] = []
    for i in range(max((len(x) for x in lists), default=0)):
        out.extend(x[i] for x in lists if i < len(x))
    return out


def _has_genre(titles: Titles | None, title_id: str, genre: str) -> bool:
    info = titles.info.get(title_id) if titles is not None else None
    return info is not None and genre in info.genres


def _favourite_genre(features: featurestore_pb2.GetUserFeaturesResponse | None) -> str | None:
    """The genre of the member's largest affinity, None without one."""
    if features is None:
        return None
    feature = features.features.features.get(_AFFINITY)
    if feature is None or feature.source == common_pb2.FEATURE_SOURCE_DEFAULT:
        return None
    values = np.asarray(feature.value.float_vector_value.values, dtype=np.float32)
    if values.size != len(GENRES) or not np.isfinite(values).all() or values.max() <= 0:
        return None
    return GENRES[int(values.argmax())]


def _watched(features: featurestore_pb2.GetUserFeaturesResponse | None) -> frozenset[str]:
    if features is None:
        return frozenset()
    feature = features.features.features.get(_WATCHED)
    if feature is None:
        return frozenset()
    return frozenset(feature.value.string_list_value.values)
