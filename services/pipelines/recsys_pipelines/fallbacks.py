"""Fallback lists from the lake: top titles per country, per country and genre, and global.

    lists = compute_fallbacks(catalog, lake, pipelines, as_of, window_days=30, top_n=100)
    report = run_fallbacks(settings, catalog, registry, as_of, progress=print)

``run_fallbacks`` computes the lists, publishes them to the model registry as model
``fallbacks`` (one JSON file the API image carries: the emergency list), makes that version
current, and writes them to Redis as a new generation behind a pointer
(``recsys.models.fallbacks`` holds both layouts; docs/models.md and docs/redis-keys.md). The
ranking is in ``sql/fallbacks.sql``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from pyiceberg.catalog import Catalog

from recsys.config import LakeSettings, Settings
from recsys.models import Manifest, ModelRegistry
from recsys.models.fallbacks import (
    FALLBACKS_FILE,
    FALLBACKS_MODEL,
    FallbackLists,
    current_key,
    list_key,
)
from recsys_pipelines.contracts import SILVER_PLAYBACK, SILVER_RATINGS
from recsys_pipelines.engine import Engine
from recsys_pipelines.errors import PipelineError
from recsys_pipelines.lakeio import read_titles
from recsys_pipelines.settings import PipelineSettings
from recsys_pipelines.tables import load_existing, read_table

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "FallbackReport",
    "compute_fallbacks",
    "ensure_fallbacks_in_redis",
    "load_fallbacks_into_redis",
    "publish_fallbacks",
    "run_fallbacks",
    "write_fallbacks_to_redis",
]

# An older generation stays readable this long after the pointer moved past it: a reader that
# read the pointer just before the move still finds its lists.
OLD_GENERATION_GRACE_S = 300


@dataclass
class FallbackReport:
    as_of: date
    version: str = ""
    lists: int = 0
    countries: int = 0
    redis_keys: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def compute_fallbacks(
    catalog: Catalog,
    lake: LakeSettings,
    pipelines: PipelineSettings,
    as_of: date,
    *,
    window_days: int,
    top_n: int,
) -> FallbackLists:
    """The lists from the ``window_days`` days ending on ``as_of``; PipelineError when that
    window holds no play and no rating."""
    first = as_of - timedelta(days=window_days - 1)
    playback = read_table(catalog, lake, SILVER_PLAYBACK, first, as_of)
    ratings = read_table(catalog, lake, SILVER_RATINGS, first, as_of)
    if playback.num_rows == 0 and ratings.num_rows == 0:
        raise PipelineError(
            f"no plays or ratings in silver from {first} to {as_of}: nothing to rank the "
            "fallback lists by (run silver first, or pick another --as-of)"
        )
    with Engine(pipelines) as engine:
        engine.register("playback", playback)
        engine.register("ratings", ratings)
        engine.register("titles", read_titles(catalog, lake))
        rows = engine.run("fallbacks", first=first, as_of=as_of, top_n=top_n).to_pylist()
    global_titles: list[str] = []
    countries: dict[str, list[str]] = {}
    genres: dict[str, dict[str, list[str]]] = {}
    for row in rows:  # ordered by list, country, genre, rank
        if row["list"] == "global":
            global_titles.append(row["title_id"])
        elif row["list"] == "country":
            countries.setdefault(row["country"], []).append(row["title_id"])
        else:
            by_genre = genres.setdefault(row["country"], {})
            by_genre.setdefault(row["genre"], []).append(row["title_id"])
    return FallbackLists(
        as_of=as_of,
        window_days=window_days,
        top_n=top_n,
        global_titles=tuple(global_titles),
        countries={c: tuple(v) for c, v in countries.items()},
        country_genres={c: {g: tuple(v) for g, v in gs.items()} for c, gs in genres.items()},
    )


def publish_fallbacks(
    registry: ModelRegistry, lists: FallbackLists, training_data: dict[str, str | int | None]
) -> str:
    """A new (not yet current) version of model ``fallbacks`` holding ``fallbacks.json``."""
    with registry.new_version(FALLBACKS_MODEL) as staging:
        (staging / FALLBACKS_FILE).write_bytes(lists.to_json())
        staging.manifest = Manifest(
            training_data=dict(training_data),
            metrics={
                "global_titles": len(lists.global_titles),
                "countries": len(lists.countries),
                "country_genre_lists": sum(len(g) for g in lists.country_genres.values()),
            },
            params={"window_days": lists.window_days, "top_n": lists.top_n},
        )
    assert staging.version is not None
    return staging.version


async def write_fallbacks_to_redis(
    redis: Redis, prefix: str, lists: FallbackLists, generation: str, ttl_s: int
) -> int:
    """Write ``lists`` as generation ``generation``, then point readers at it; returns the
    number of list keys. The previous generation expires shortly after (see the grace)."""
    keys = lists.keys(prefix, generation)
    pipe = redis.pipeline(transaction=False)
    for key, titles in keys.items():
        pipe.delete(key)
        if titles:
            pipe.rpush(key, *titles)
            pipe.expire(key, ttl_s)
    await pipe.execute()
    # Only now is the generation complete: the pointer swap is one SET.
    previous = await redis.set(current_key(prefix), generation, ex=ttl_s, get=True)
    if previous is not None and _text(previous) != generation:
        await _expire_generation(redis, prefix, _text(previous))
    return len(keys)


async def _expire_generation(redis: Redis, prefix: str, generation: str) -> None:
    pattern = list_key(prefix, generation).removesuffix("global") + "*"
    pipe = redis.pipeline(transaction=False)
    async for key in redis.scan_iter(match=pattern, count=1000):
        pipe.expire(key, OLD_GENERATION_GRACE_S)
    await pipe.execute()


def run_fallbacks(
    settings: Settings,
    catalog: Catalog,
    registry: ModelRegistry,
    as_of: date,
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> FallbackReport:
    """Compute, publish and promote the lists, then write them to Redis."""
    models = settings.models
    report = FallbackReport(as_of)
    clock = time.perf_counter()
    lists = compute_fallbacks(
        catalog,
        settings.lake,
        settings.pipelines,
        as_of,
        window_days=models.fallback_window_days,
        top_n=models.fallback_top_n,
    )
    report.seconds["compute"] = time.perf_counter() - clock
    report.lists = len(lists.keys("x", "g"))
    report.countries = len(lists.countries)

    clock = time.perf_counter()
    report.version = publish_fallbacks(
        registry, lists, {"as_of": as_of.isoformat(), **_snapshot_ids(catalog, settings.lake)}
    )
    registry.promote(FALLBACKS_MODEL, report.version)
    report.seconds["registry"] = time.perf_counter() - clock

    clock = time.perf_counter()
    report.redis_keys = asyncio.run(_to_redis(settings, lists, report.version))
    report.seconds["redis"] = time.perf_counter() - clock
    progress(
        f"fallbacks {report.version}: {len(lists.global_titles)} global titles, "
        f"{report.countries} countries, {report.lists} lists as of {as_of}"
    )
    return report


def load_fallbacks_into_redis(settings: Settings, registry: ModelRegistry) -> str | None:
    """Make Redis serve the registry's current fallbacks (after a restart, or once the TTL has
    passed): see :func:`ensure_fallbacks_in_redis`."""

    async def run() -> str | None:
        from recsys.clients.redis import redis_client

        redis = redis_client(settings.redis, timeout_s=5.0)
        try:
            return await ensure_fallbacks_in_redis(
                redis, settings.redis.key_prefix, registry, settings.models.fallback_ttl_s
            )
        finally:
            await redis.aclose()

    return asyncio.run(run())


async def ensure_fallbacks_in_redis(
    redis: Redis, prefix: str, registry: ModelRegistry, ttl_s: int
) -> str | None:
    """Write the current ``fallbacks`` version to Redis unless Redis already points at it and
    holds it. Returns the generation written; None when nothing was needed or registered."""
    if registry.current_token(FALLBACKS_MODEL) is None:
        return None
    version = registry.current(FALLBACKS_MODEL)
    if version is None:  # the token said otherwise a moment ago; nothing to serve
        return None
    pointed = await redis.get(current_key(prefix))
    served = pointed is not None and _text(pointed) == version.version
    if served and await redis.exists(list_key(prefix, version.version)):
        return None
    lists = FallbackLists.from_json(version.file(FALLBACKS_FILE).read_bytes())
    await write_fallbacks_to_redis(redis, prefix, lists, version.version, ttl_s)
    return version.version


async def _to_redis(settings: Settings, lists: FallbackLists, generation: str) -> int:
    from recsys.clients.redis import redis_client

    # An offline batch write: not bound by the serving socket timeout.
    redis = redis_client(settings.redis, timeout_s=5.0)
    try:
        return await write_fallbacks_to_redis(
            redis, settings.redis.key_prefix, lists, generation, settings.models.fallback_ttl_s
        )
    finally:
        await redis.aclose()


def _snapshot_ids(catalog: Catalog, lake: LakeSettings) -> dict[str, str | int | None]:
    ids: dict[str, str | int | None] = {}
    for contract in (SILVER_PLAYBACK, SILVER_RATINGS):
        snapshot = load_existing(catalog, lake, contract.name).current_snapshot()
        ids[f"{contract.name}_snapshot_id"] = snapshot.snapshot_id if snapshot else None
    return ids


def _text(value: bytes | str | bool) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
