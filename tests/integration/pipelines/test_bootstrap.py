"""`recsys pipeline bootstrap` on the real Kafka, bronze writer, lake, Cassandra and Redis:
events in a topic -> (wait for bronze) -> silver -> features -> training set -> fallback lists in
the registry and Redis. The models stage is `recsys_pipelines.learning`'s and is run by its own
tests; here it is off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from recsys.clients.cassandra import CassandraClient
from recsys.config import CassandraSettings, ModelsSettings, Settings
from recsys.models import FALLBACKS_FILE, FallbackLists, ModelRegistry
from recsys.models.fallbacks import read_fallback
from recsys_bronze import BronzeSettings, BronzeWriter
from recsys_pipelines.bootstrap import BootstrapOptions, BootstrapReport, bootstrap
from recsys_pipelines.contracts import FEATURES_TITLE_DAILY, TRAINING_EXAMPLES
from recsys_pipelines.errors import PipelineError
from recsys_pipelines.tables import read_table
from tests.features_support import create_topics, delete_topics, produce_bronze_rows
from tests.unit.pipelines.scenario import D1, D, catalog, day_d1_events, day_d_events
from tests.unit.pipelines.scripted import ScriptedLake

pytestmark = pytest.mark.integration

GUARD_S = 300


@pytest.fixture
async def topic(infra: Settings, unique: str) -> AsyncIterator[str]:
    name = f"test.bootstrap.{unique}"
    await create_topics(infra, [name], 3)
    yield name
    await delete_topics(infra, name)


@pytest.fixture
def lake(tmp_path: Path) -> ScriptedLake:
    lake = ScriptedLake.create(tmp_path)
    catalog(lake)  # titles and members, as `recsys world generate` / `import` store them
    return lake


def _settings(
    infra: Settings, lake: ScriptedLake, tmp_path: Path, unique: str, catchup_timeout_s: float = 600
) -> Settings:
    return infra.model_copy(
        update={
            "lake": lake.lake,
            "pipelines": lake.settings,
            "models": ModelsSettings(root=tmp_path / "models", catchup_timeout_s=catchup_timeout_s),
            "redis": infra.redis.model_copy(
                update={"key_prefix": f"{infra.redis.key_prefix}:test:{unique}"}
            ),
        }
    )


async def test_events_to_fallback_lists(
    infra: Settings,
    unique: str,
    tmp_path: Path,
    topic: str,
    lake: ScriptedLake,
    keyspace_settings: CassandraSettings,
    cassandra_client: CassandraClient,
    redis: Redis,
) -> None:
    settings = _settings(infra, lake, tmp_path, unique).model_copy(
        update={"cassandra": keyspace_settings}
    )
    await produce_bronze_rows(settings, topic, [*day_d_events(), *day_d1_events()])
    # The writer starts with the bootstrap: the bootstrap has to wait for it to catch up.
    writer = BronzeWriter(
        settings,
        BronzeSettings(topic=topic, group_id=f"test-bootstrap-{unique}", commit_interval_s=0.5),
    )
    task = asyncio.create_task(writer.run())
    lines: list[str] = []
    options = BootstrapOptions(label_days=2, models=False, events_topic=topic)
    try:
        async with asyncio.timeout(GUARD_S):
            report: BootstrapReport = await asyncio.to_thread(
                bootstrap,
                settings,
                lake.catalog,
                options,
                progress=lines.append,
                cassandra=cassandra_client,
            )
    finally:
        writer.stop()
        await asyncio.gather(task, return_exceptions=True)

    # As of the data's own latest event day, not today.
    assert report.as_of == D1
    assert list(report.seconds) == ["catch-up", "silver", "features", "training-set", "fallbacks"]
    # The serving copy of the title features, published beside their Cassandra rows.
    assert report.registered == {"fallbacks": "v0001", "title_features": "v0001"}
    assert any(line.startswith("[fallbacks] ") and " s: v0001" in line for line in lines)

    # Features for the day before each label day (D - 1, D) and the as-of day D + 1.
    # (every title has a row each day; members only once they have played)
    titles = read_table(lake.catalog, lake.lake, FEATURES_TITLE_DAILY).to_pylist()
    assert sorted({str(r["feature_date"]) for r in titles}) == [
        "2026-11-19",
        "2026-11-20",
        "2026-11-21",
    ]
    served = cassandra_client.session.execute(
        f"SELECT entity_id FROM {keyspace_settings.keyspace}.online_features "
        "WHERE entity = 'user' AND entity_id = 'u1'"
    )
    assert len(list(served)) > 0
    examples = read_table(lake.catalog, lake.lake, TRAINING_EXAMPLES, D, D1)
    assert examples.num_rows > 0

    registry = ModelRegistry(settings.models.root)
    current = registry.current("fallbacks")
    assert current is not None
    lists = FallbackLists.from_json(current.file(FALLBACKS_FILE).read_bytes())
    assert lists.as_of == D1
    # Over D-29 .. D+1: US t1 (u1 completed + rated 5: 3, u3 played: 1) leads.
    assert lists.countries["US"][0] == "t1"
    prefix = settings.redis.key_prefix
    assert await read_fallback(redis, prefix, "US") == list(lists.countries["US"])
    assert await read_fallback(redis, prefix) == list(lists.global_titles)
    keys = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
    await redis.delete(*keys)


def test_a_bronze_that_never_catches_up_is_a_clear_error(
    infra: Settings, unique: str, tmp_path: Path, lake: ScriptedLake
) -> None:
    settings = _settings(infra, lake, tmp_path, unique, catchup_timeout_s=1.0)

    async def prepare() -> str:
        name = f"test.bootstrap.{unique}"
        await create_topics(settings, [name], 2)
        await produce_bronze_rows(settings, name, [*day_d_events(), *day_d1_events()])
        return name

    topic = asyncio.run(prepare())
    try:
        lake.events()  # a bronze table with nothing of this topic in it
        with pytest.raises(PipelineError) as excinfo:
            bootstrap(settings, lake.catalog, BootstrapOptions(events_topic=topic))
        message = str(excinfo.value)
        assert "\n" not in message
        assert message.startswith("the bronze lake is still ")
        assert "records behind" in message
        assert "is the bronze writer running?" in message
    finally:
        asyncio.run(delete_topics(settings, topic))


def test_an_empty_lake_is_a_clear_error(infra: Settings, tmp_path: Path, unique: str) -> None:
    empty = ScriptedLake.create(tmp_path / "empty")
    settings = _settings(infra, empty, tmp_path, unique)
    with pytest.raises(PipelineError, match=r"dim_titles does not exist: run `recsys world"):
        bootstrap(settings, empty.catalog, BootstrapOptions(wait=False))
    catalog(empty)
    with pytest.raises(PipelineError, match=r"bronze_events does not exist: start the bronze"):
        bootstrap(settings, empty.catalog, BootstrapOptions(wait=False))
    empty.events()  # bronze exists, with no event
    with pytest.raises(PipelineError, match=r"^the lake holds no plays or ratings: import"):
        bootstrap(settings, empty.catalog, BootstrapOptions(wait=False))
