"""A local Spark session on the lake, and the silver transforms run through it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys.config import LakeSettings, Settings
from recsys.infra.maven import resolve_classpath
from recsys.lake import CATALOG_NAME
from recsys_pipelines.engine import render, sql_text
from recsys_pipelines.errors import PipelineError
from recsys_pipelines.silver import GAP_US, READ_MARGIN

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

__all__ = ["run_on_spark", "spark_jars", "spark_session"]


def spark_jars(settings: Settings) -> list[Path]:
    """The Iceberg runtime and SQLite JDBC jars (resolved from Maven Central once)."""
    pom = Path(str(resources.files("recsys_pipelines.spark").joinpath("pom.xml")))
    jars, _ = resolve_classpath(pom, settings.infra.cache_dir, name="pipelines-spark")
    return jars


@contextmanager
def spark_session(settings: Settings, lake: LakeSettings) -> Iterator[Any]:
    """A ``local[2]`` SparkSession whose catalog ``recsys`` is the lake; stopped on exit."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise PipelineError(
            "pyspark is not installed: `uv sync --all-packages --all-extras`, as `make venv` "
            "does (docs/lake.md)"
        ) from None
    if not lake.catalog_url.startswith("sqlite:///"):
        raise PipelineError("the Spark run supports the SQLite catalog only")
    database = lake.catalog_url.removeprefix("sqlite:///")
    prefix = f"spark.sql.catalog.{CATALOG_NAME}"
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("recsys-pipelines")
        .config("spark.jars", ",".join(str(j) for j in spark_jars(settings)))
        .config(
            "spark.sql.extensions",
            "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        )
        .config(prefix, "org.apache.iceberg.spark.SparkCatalog")
        .config(f"{prefix}.catalog-impl", "org.apache.iceberg.jdbc.JdbcCatalog")
        .config(f"{prefix}.uri", f"jdbc:sqlite:{database}")
        .config(f"{prefix}.warehouse", lake.warehouse.expanduser().resolve().as_uri())
        # Dates of timestamps are UTC dates, as in DuckDB (engine.py).
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    try:
        yield spark
    finally:
        spark.stop()


def run_on_spark(
    spark: Any, lake: LakeSettings, bronze_table: str, name: str, days: Sequence[date]
) -> pa.Table:
    """``sql/<name>.sql`` for ``days`` on Spark, over the same bronze and dim_titles tables and
    the same read window as :func:`recsys_pipelines.silver.run_silver`."""
    import pyarrow as pa

    start = datetime.combine(days[0], dtime(), UTC) - READ_MARGIN
    end = datetime.combine(days[-1] + timedelta(days=1), dtime(), UTC) + READ_MARGIN
    ns = f"{CATALOG_NAME}.{lake.namespace}"
    spark.sql(
        f"SELECT * FROM {ns}.{bronze_table} WHERE occurred_at >= TIMESTAMP '{_ts(start)}' "
        f"AND occurred_at < TIMESTAMP '{_ts(end)}'"
    ).createOrReplaceTempView("bronze")
    spark.sql(f"SELECT title_id, runtime_min FROM {ns}.dim_titles").createOrReplaceTempView(
        "titles"
    )
    spark.sql(render(sql_text("silver_events"), {"gap_us": GAP_US})).createOrReplaceTempView(
        "events"
    )
    spark.range(0, 1000).selectExpr("CAST(id AS INT) AS i").createOrReplaceTempView("positions")
    table: pa.Table = spark.sql(render(sql_text(name), {"dates": list(days)})).toArrow()
    return pa.Table.from_batches(table.to_batches())


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
