"""The silver SQL on Apache Spark over the same Iceberg tables (docs/lake.md, "Beyond one machine").

    with spark_session(settings, lake) as spark:
        rows = run_on_spark(spark, lake, settings, "silver_sessions", [day])

Spark reads the lake through Iceberg's own ``JdbcCatalog`` on the SQLite file pyiceberg's
``SqlCatalog`` writes (the same two tables), with the session time zone in UTC. The transforms
are the files of ``recsys_pipelines/sql`` rendered with the same literals: not one character
differs from what DuckDB runs. pyspark is in the pipelines member's ``spark`` extra only.
"""

from __future__ import annotations

from recsys_pipelines.spark.session import run_on_spark, spark_jars, spark_session

__all__ = ["run_on_spark", "spark_jars", "spark_session"]
