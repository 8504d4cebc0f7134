"""The silver SQL, unchanged, on a local Apache Spark over the same Iceberg tables gives the same
rows as the default engine (DuckDB). Spark's JVM takes 15-40 s to start on 2 cores: one session
for every table."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.config import Settings
from recsys_pipelines.contracts import SILVER_TABLES
from recsys_pipelines.silver import run_silver
from recsys_pipelines.spark import run_on_spark, spark_session
from recsys_pipelines.tables import conform, read_table
from tests.unit.pipelines.scenario import D, catalog, day_d_events
from tests.unit.pipelines.scripted import ScriptedLake

pytestmark = pytest.mark.integration


def test_every_silver_transform_gives_the_same_rows_on_spark(
    infra: Settings, tmp_path: Path
) -> None:
    lake = ScriptedLake.create(tmp_path)
    catalog(lake)
    lake.events(*day_d_events())
    run_silver(lake.catalog, lake.lake, lake.settings)
    with spark_session(infra, lake.lake) as spark:
        for contract in SILVER_TABLES:
            keys = [(c, "ascending") for c in contract.columns]
            duckdb_rows = read_table(lake.catalog, lake.lake, contract, D, D).sort_by(keys)
            spark_rows = conform(
                run_on_spark(spark, lake.lake, lake.settings.bronze_table, contract.name, [D]),
                contract,
            ).sort_by(keys)
            assert duckdb_rows.num_rows > 0, contract.name
            assert spark_rows.to_pylist() == duckdb_rows.to_pylist(), contract.name
