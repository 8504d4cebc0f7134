"""A small trained platform for the serving tests, built once per run: a synthetic world's lake,
the two-tower and ranker trained on it (registry of the run's own), the daily job's features in a
Cassandra keyspace of its own and its title table published; then the three services as
processes on free ports, pointed at all of that."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from recsys.clients.cassandra import CassandraClient, connect_cassandra
from recsys.config import Settings
from recsys.infra.cql_migrations import apply_migrations, drop_keyspace
from recsys.lake import load_catalog
from recsys.models import ModelRegistry
from recsys_pipelines.contracts import FEATURES_USER_DAILY
from recsys_pipelines.daily import DailyContext, run_daily
from recsys_pipelines.learning import train_and_register
from recsys_pipelines.tables import read_table
from tests.integration.learning.test_small_world import TINY
from tests.integration.learning.world import WorldLake, small_world_lake
from tests.serving_support import ServingProcess, start_service

if TYPE_CHECKING:
    from tests.integration.serving.api_system import ApiSystem


@dataclass
class Platform:
    world: WorldLake
    settings: Settings  # the world's lake and registry, the keyspace and Redis prefix below
    registry: ModelRegistry
    root: Path
    members: list[str]  # those the daily job wrote features for

    @property
    def env(self) -> dict[str, str]:
        """What a serving process needs to find this platform."""
        return {
            "RECSYS_MODELS__ROOT": str(self.registry.root),
            "RECSYS_CASSANDRA__KEYSPACE": self.settings.cassandra.keyspace,
            "RECSYS_REDIS__KEY_PREFIX": self.settings.redis.key_prefix,
            "RECSYS_SERVING__RELOAD_INTERVAL_S": "0.2",
        }


@pytest.fixture(scope="session")
def platform(infra: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("serving")
    world = small_world_lake(root, titles=200, members=300, days=5, sessions_per_day=300)
    keyspace = f"test_serving_{root.name.replace('-', '_')[-20:]}"
    admin = connect_cassandra(infra.cassandra)
    apply_migrations(admin, infra.cassandra, keyspace=keyspace)
    settings = world.settings.model_copy(
        update={
            "cassandra": infra.cassandra.model_copy(update={"keyspace": keyspace}),
            "redis": infra.redis.model_copy(
                update={"key_prefix": f"{infra.redis.key_prefix}:test:{keyspace}"}
            ),
        }
    )
    registry = ModelRegistry(settings.models.root)
    train_and_register(settings, registry, config=TINY, promote=True)
    client: CassandraClient = connect_cassandra(settings.cassandra)
    try:
        ctx = DailyContext(
            settings, settings.pipelines, load_catalog(settings.lake), client, registry
        )
        run_daily(ctx, world.last_day, silver=False)
    finally:
        client.close()
    daily = read_table(
        load_catalog(settings.lake),
        settings.lake,
        FEATURES_USER_DAILY,
        world.last_day,
        world.last_day,
    )
    members = sorted(str(u) for u in daily.column("user_id").to_pylist())
    yield Platform(world, settings, registry, root, members)
    drop_keyspace(admin, keyspace)
    admin.close()


@pytest.fixture(scope="session")
def services(platform: Platform) -> Iterator[dict[str, ServingProcess]]:
    """The three services, SERVING, for the whole run."""
    started = {
        name: start_service(name, platform.root, platform.env)
        for name in ("featurestore", "candidates", "ranker")
    }
    try:
        for process in started.values():
            process.wait_serving()
        yield started
    finally:
        for process in started.values():
            process.terminate()


@pytest.fixture(scope="session")
def api_platform(
    platform: Platform, infra: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiSystem]:
    """The whole system with the API (api_system.py), for the API and web page tests."""
    from tests.integration.serving.api_system import api_system

    with api_system(platform, infra, tmp_path_factory.mktemp("api")) as running:
        yield running
