"""The world and imported catalogs stored in the real Cassandra and an Iceberg warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped]
import pytest
from typer.testing import CliRunner

from recsys.cli.main import build_app
from recsys.clients.cassandra import CassandraClient
from recsys.config import LakeSettings, Settings
from recsys.infra.cql_migrations import apply_migrations, drop_keyspace, ensure_keyspace
from recsys.lake import load_catalog
from recsys_datagen import catalog_store
from recsys_datagen.dimensions import SYNTHETIC
from recsys_datagen.importers import ImportProfile, read_movielens, run_import
from recsys_datagen.lake_tables import DIM_MEMBERS, DIM_TITLES, read_dim
from recsys_datagen.sim_world import SimWorld
from recsys_datagen.store import CassandraTarget, LakeTarget, store_dimensions
from recsys_datagen.world import World, WorldSpec, generate_world
from tests.unit.datagen.paths import FIXTURES

pytestmark = pytest.mark.integration


@pytest.fixture
def keyspace(cassandra: CassandraClient, infra: Settings, unique: str) -> Iterator[str]:
    name = f"test_dg_{unique}"
    apply_migrations(cassandra, infra.cassandra, keyspace=name)
    yield name
    drop_keyspace(cassandra, name)


@pytest.fixture
def lake(tmp_path: Path) -> LakeTarget:
    settings = LakeSettings(warehouse=tmp_path / "lake")
    return LakeTarget(load_catalog(settings), settings)


def _store(world: World, cassandra: CassandraClient, keyspace: str, lake: LakeTarget) -> int:
    report = store_dimensions(
        world.titles,
        world.members,
        source=SYNTHETIC,
        cassandra=CassandraTarget(cassandra, keyspace),
        lake=lake,
        seed=world.spec.seed,
    )
    return report.cassandra_deleted


def _count(cassandra: CassandraClient, keyspace: str, table: str) -> int:
    return int(cassandra.execute_sync(f"SELECT count(*) AS n FROM {keyspace}.{table}")[0]["n"])


def _sorted_countries(table: pa.Table) -> list[list[str]]:
    return [sorted(c) for c in table.column("available_countries").to_pylist()]


def test_a_world_is_stored_and_read_back(
    cassandra: CassandraClient, keyspace: str, lake: LakeTarget
) -> None:
    world = generate_world(WorldSpec(seed=11, titles=300, members=1_000))
    _store(world, cassandra, keyspace, lake)

    members = catalog_store.read_members(cassandra, keyspace, SYNTHETIC)
    assert members.equals(world.members)
    titles = catalog_store.read_titles(cassandra, keyspace, SYNTHETIC)
    # A Cassandra set comes back sorted; every other column is exactly what was generated.
    others = [n for n in titles.column_names if n != "available_countries"]
    assert titles.select(others).equals(world.titles.select(others))
    assert _sorted_countries(titles) == _sorted_countries(world.titles)

    lake_titles = read_dim(lake.catalog, lake.settings, DIM_TITLES, SYNTHETIC)
    lake_members = read_dim(lake.catalog, lake.settings, DIM_MEMBERS, SYNTHETIC)
    assert lake_titles is not None
    assert lake_titles.equals(world.titles)
    assert lake_members is not None
    assert lake_members.equals(world.members)

    record = catalog_store.read_dataset(cassandra, keyspace, SYNTHETIC)
    assert record is not None
    assert (record.titles, record.members, record.seed) == (300, 1_000, 11)


def test_regenerating_replaces_the_world(
    cassandra: CassandraClient, keyspace: str, lake: LakeTarget
) -> None:
    _store(generate_world(WorldSpec(seed=1, titles=300, members=1_000)), cassandra, keyspace, lake)
    smaller = generate_world(WorldSpec(seed=2, titles=200, members=600))
    deleted = _store(smaller, cassandra, keyspace, lake)
    assert deleted == 100 + 400

    assert (_count(cassandra, keyspace, "titles"), _count(cassandra, keyspace, "members")) == (
        200,
        600,
    )
    assert catalog_store.read_members(cassandra, keyspace, SYNTHETIC).equals(smaller.members)
    lake_titles = read_dim(lake.catalog, lake.settings, DIM_TITLES)
    lake_members = read_dim(lake.catalog, lake.settings, DIM_MEMBERS)
    assert lake_titles is not None
    assert lake_titles.equals(smaller.titles)
    assert lake_members is not None
    assert lake_members.equals(smaller.members)
    # Each write is one Iceberg snapshot; the first stays readable for time travel.
    table = lake.catalog.load_table((lake.settings.namespace, DIM_MEMBERS))
    assert len(table.history()) >= 2
    snapshot = table.current_snapshot()
    assert snapshot is not None
    assert snapshot.summary is not None
    assert snapshot.summary["recsys.seed"] == "2"


async def test_an_import_and_the_world_live_side_by_side(
    cassandra: CassandraClient, keyspace: str, lake: LakeTarget
) -> None:
    world = generate_world(WorldSpec(seed=5, titles=100, members=200))
    _store(world, cassandra, keyspace, lake)
    data = read_movielens(FIXTURES / "ml-100k")
    cassandra_target = CassandraTarget(cassandra, keyspace)
    for _ in range(2):  # importing twice replaces, it does not duplicate
        report = await run_import(
            data, profile=ImportProfile(), sender=None, cassandra=cassandra_target, lake=lake
        )
    assert (report.titles, report.members, report.events_built) == (6, 4, 27)

    imported = catalog_store.read_titles(cassandra, keyspace, "movielens")
    assert imported.column("title_id").to_pylist() == [f"ml-{i}" for i in range(1, 7)]
    assert _count(cassandra, keyspace, "titles") == 106
    assert _count(cassandra, keyspace, "members") == 204
    lake_titles = read_dim(lake.catalog, lake.settings, DIM_TITLES)
    assert lake_titles is not None
    assert (
        sorted(lake_titles.column("source").to_pylist()) == ["movielens"] * 6 + ["synthetic"] * 100
    )

    # Regenerating the world leaves the imported rows alone.
    _store(generate_world(WorldSpec(seed=6, titles=50, members=80)), cassandra, keyspace, lake)
    assert catalog_store.read_titles(cassandra, keyspace, "movielens").num_rows == 6
    lake_members = read_dim(lake.catalog, lake.settings, DIM_MEMBERS, "movielens")
    assert lake_members is not None
    assert lake_members.num_rows == 4


def test_the_simulator_reads_the_same_world_from_either_store(
    cassandra: CassandraClient, keyspace: str, lake: LakeTarget
) -> None:
    world = generate_world(WorldSpec(seed=9, titles=120, members=300))
    _store(world, cassandra, keyspace, lake)
    from_cassandra = SimWorld.from_tables(
        catalog_store.read_titles(cassandra, keyspace, SYNTHETIC),
        catalog_store.read_members(cassandra, keyspace, SYNTHETIC),
    )
    lake_titles = read_dim(lake.catalog, lake.settings, DIM_TITLES, SYNTHETIC)
    lake_members = read_dim(lake.catalog, lake.settings, DIM_MEMBERS, SYNTHETIC)
    from_lake = SimWorld.from_tables(lake_titles, lake_members)
    assert from_cassandra.title_ids == from_lake.title_ids
    assert from_cassandra.member_ids == from_lake.member_ids
    assert (from_cassandra.available == from_lake.available).all()
    assert (from_cassandra.member_tastes == from_lake.member_tastes).all()


def test_missing_migrations_are_reported(
    cassandra: CassandraClient, infra: Settings, unique: str
) -> None:
    name = f"test_dg_bare_{unique}"
    ensure_keyspace(cassandra, infra.cassandra, name)
    try:
        with pytest.raises(catalog_store.CatalogTablesMissing, match="run `recsys infra migrate`"):
            catalog_store.ensure_catalog_tables(cassandra, name)
    finally:
        drop_keyspace(cassandra, name)


def test_the_world_commands_against_the_real_stores(
    keyspace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECSYS_CASSANDRA__KEYSPACE", keyspace)
    monkeypatch.setenv("RECSYS_LAKE__WAREHOUSE", str(tmp_path / "cli-lake"))
    runner = CliRunner()
    app = build_app()
    generated = runner.invoke(app, ["world", "generate", "--titles", "300", "--members", "1000"])
    assert generated.exit_code == 0, generated.output
    assert f"cassandra  {keyspace}.titles, .members: 1300 rows" in generated.output
    status = runner.invoke(app, ["world", "status"])
    assert status.exit_code == 0, status.output
    assert "synthetic       300 titles, 1000 members, seed 42" in status.output
    assert "dim_members     synthetic 1000" in status.output
    # The simulator finds this world in Cassandra, then stops at the missing ingest.
    simulated = runner.invoke(
        app, ["simulate", "--world-from", "cassandra", "--ingest-url", "http://127.0.0.1:9"]
    )
    assert simulated.exit_code == 1
    assert "cannot reach the ingest API" in simulated.output
