"""Issue 11's whole chain on the real Kafka, Cassandra, Redis and lake, for a small world:
events in Kafka -> bronze (the writer) -> silver -> daily features (to Cassandra) -> training set
-> baselines, two-tower and ranker -> ONNX -> FAISS -> registry -> fallback lists (registry and
Redis) -> recommend-offline through the registered models."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from recsys.clients.cassandra import CassandraClient
from recsys.config import CassandraSettings, LakeSettings, ModelsSettings, Settings
from recsys.lake import load_catalog
from recsys.models import FALLBACKS_FILE, FallbackLists, ModelRegistry
from recsys.models.fallbacks import read_fallback
from recsys_bronze import BronzeSettings, BronzeWriter
from recsys_pipelines.bootstrap import BootstrapOptions, bootstrap
from recsys_pipelines.contracts import (
    GOLD_OFFLINE_EVALUATION,
    SILVER_PLAYBACK,
    SILVER_RATINGS,
    TRAINING_EXAMPLES,
)
from recsys_pipelines.dates import today_utc
from recsys_pipelines.learning import LearningConfig
from recsys_pipelines.learning.ranker import RankerConfig
from recsys_pipelines.learning.two_tower import TwoTowerConfig
from recsys_pipelines.recommend_offline import recommend_offline
from recsys_pipelines.settings import PipelineSettings
from recsys_pipelines.tables import read_table
from tests.features_support import create_topics, delete_topics, produce_bronze_rows
from tests.integration.learning.world import SmallWorld, small_world

pytestmark = pytest.mark.integration

GUARD_S = 600
# Seconds of training, not minutes: the chain is what is tested here, quality is the benchmark's.
TINY = LearningConfig(
    two_tower=TwoTowerConfig(epochs=1, batch_size=256),
    two_tower_variants=(("previous", 1),),
    ranker=RankerConfig(epochs=1, hidden=(32, 16)),
    candidates=30,
    ease_lambdas=(50.0,),
    als_grid=((8, 1.0, 10.0),),
    bpr_grid=((8, 0.01, 0.01),),
)


@pytest.fixture(scope="module")
def world() -> SmallWorld:
    # Ends three days ago, so the label days' 24 h horizons are over and a training set is built.
    return small_world(
        titles=120, members=150, days=3, sessions_per_day=150, last_day=today_utc() - timedelta(3)
    )


@pytest.fixture
async def topic(infra: Settings, unique: str) -> AsyncIterator[str]:
    name = f"test.e2e.{unique}"
    await create_topics(infra, [name], 3)
    yield name
    await delete_topics(infra, name)


def _played(settings: Settings) -> dict[str, set[str]]:
    catalog = load_catalog(settings.lake)
    played: dict[str, set[str]] = {}
    for contract in (SILVER_PLAYBACK, SILVER_RATINGS):
        rows = read_table(catalog, settings.lake, contract)
        for user, title in zip(
            rows.column("user_id").to_pylist(), rows.column("title_id").to_pylist(), strict=True
        ):
            played.setdefault(user, set()).add(title)
    return played


async def test_events_in_kafka_to_offline_recommendations(
    infra: Settings,
    unique: str,
    tmp_path: Path,
    topic: str,
    world: SmallWorld,
    keyspace_settings: CassandraSettings,
    cassandra_client: CassandraClient,
    redis: Redis,
) -> None:
    settings = infra.model_copy(
        update={
            "lake": LakeSettings(warehouse=tmp_path / "lake"),
            "pipelines": PipelineSettings(engine_threads=1),
            "models": ModelsSettings(root=tmp_path / "models"),
            "cassandra": keyspace_settings,
            "redis": infra.redis.model_copy(
                update={"key_prefix": f"{infra.redis.key_prefix}:test:{unique}"}
            ),
        }
    )
    world.write_dims(settings)
    sent = await produce_bronze_rows(settings, topic, world.bronze_rows())
    writer = BronzeWriter(
        settings,
        BronzeSettings(topic=topic, group_id=f"test-e2e-{unique}", commit_interval_s=0.5),
    )
    task = asyncio.create_task(writer.run())
    lines: list[str] = []
    options = BootstrapOptions(label_days=2, events_topic=topic, learning=TINY)
    try:
        async with asyncio.timeout(GUARD_S):
            report = await asyncio.to_thread(
                bootstrap,
                settings,
                load_catalog(settings.lake),
                options,
                progress=lines.append,
                cassandra=cassandra_client,
            )
    finally:
        writer.stop()
        await asyncio.gather(task, return_exceptions=True)

    assert report.as_of == world.last_day
    assert f"bronze holds all {sent} records" in report.notes["catch-up"]
    assert list(report.seconds) == [
        "catch-up",
        "silver",
        "features",
        "training-set",
        "models",
        "fallbacks",
    ]
    assert report.registered == {
        "fallbacks": "v0001",
        "ranker": "v0001",
        "title_features": "v0001",
        "two_tower": "v0001",
    }
    catalog = load_catalog(settings.lake)
    assert read_table(catalog, settings.lake, TRAINING_EXAMPLES).num_rows > 0
    evaluation = read_table(catalog, settings.lake, GOLD_OFFLINE_EVALUATION).to_pylist()
    assert {r["model"] for r in evaluation} >= {"ease", "two_tower", "two_tower+ranker"}
    served = cassandra_client.session.execute(
        f"SELECT entity_id FROM {keyspace_settings.keyspace}.online_features "
        "WHERE entity = 'title' AND entity_id = %s",
        (world.titles.column("title_id")[0].as_py(),),
    )
    assert len(list(served)) > 0

    registry = ModelRegistry(settings.models.root)
    fallbacks = registry.current("fallbacks")
    assert fallbacks is not None
    lists = FallbackLists.from_json(fallbacks.file(FALLBACKS_FILE).read_bytes())
    assert lists.global_titles
    assert await read_fallback(redis, settings.redis.key_prefix) == list(lists.global_titles)

    out = tmp_path / "recs.tsv"
    offline = recommend_offline(settings, registry, k=5, out=out)
    assert (offline.two_tower, offline.ranker) == ("v0001", "v0001")
    played = _played(settings)
    lists_by_member: dict[str, list[str]] = {}
    for line in out.read_text().splitlines():
        user, title, _rank, _score = line.split("\t")
        lists_by_member.setdefault(user, []).append(title)
    assert set(played) <= set(lists_by_member)
    for user, titles in lists_by_member.items():
        assert len(titles) == 5
        assert not set(titles) & played.get(user, set()), user
    keys = [k async for k in redis.scan_iter(match=f"{settings.redis.key_prefix}:*")]
    if keys:
        await redis.delete(*keys)
