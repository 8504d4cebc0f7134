"""The SQL engine: DuckDB over Arrow tables, speaking the Spark SQL our transforms are written in.

The transforms in ``sql/`` are Spark SQL that DuckDB can also run: where the two name a function
differently, the Spark name is used and DuckDB gets a macro of that name (``get_json_object``,
``unix_micros``). So the same file runs on Spark over the same Iceberg tables when the data
outgrows one machine (docs/lake.md, "Beyond one machine").

    with Engine(settings) as engine:
        engine.register("bronze", arrow_table)
        rows = engine.run("silver_sessions", dates=[date(2026, 11, 28)])

No DuckDB extension is installed or loaded at run time: JSON and Parquet support are built into
the wheel, and auto-install/auto-load are switched off so a missing one fails loudly instead of
downloading.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from importlib import resources
from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa  # type: ignore[import-untyped]

from recsys_pipelines.settings import PipelineSettings

__all__ = ["SPARK_MACROS", "Engine", "Raw", "render", "sql_text"]

# Spark SQL functions DuckDB knows under another name. Spark's get_json_object returns the JSON
# text of objects and arrays and the bare value of scalars, as DuckDB's json_extract_string does.
SPARK_MACROS: Mapping[str, str] = {
    "get_json_object": "CREATE MACRO get_json_object(j, p) AS json_extract_string(j, p)",
    "unix_micros": "CREATE MACRO unix_micros(t) AS epoch_us(t)",
}

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


def sql_text(name: str) -> str:
    """The text of ``sql/<name>.sql`` shipped with this package."""
    return resources.files("recsys_pipelines.sql").joinpath(f"{name}.sql").read_text("utf-8")


class Raw(str):
    """A SQL fragment built by our code from constants (never from input), rendered as is."""

    __slots__ = ()


def _literal(value: object) -> str:
    # Only typed values we produce ourselves are rendered, never text from users or data.
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else list(value)
        if not items:
            raise ValueError("an empty list cannot be rendered into SQL")
        return ", ".join(_literal(v) for v in items)
    raise TypeError(f"cannot render {type(value).__name__} into SQL")


def render(sql: str, params: Mapping[str, object]) -> str:
    """``sql`` with each ``{name}`` replaced by the literal of ``params[name]``.

    Parameters are rendered rather than bound because Spark and DuckDB mark parameters
    differently (``:name`` vs ``$name``); literals are the one syntax both run unchanged. Only
    ints, dates, lists of them and :class:`Raw` fragments of our own are accepted, so nothing
    read from data or typed by a user can inject SQL.
    """

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in params:
            raise KeyError(f"SQL parameter {{{key}}} has no value")
        return _literal(params[key])

    return _PLACEHOLDER.sub(substitute, sql)


class Engine:
    """One DuckDB connection (in memory, UTC) with the Spark macros and registered inputs."""

    def __init__(self, settings: PipelineSettings) -> None:
        import duckdb

        self._con: duckdb.DuckDBPyConnection = duckdb.connect(
            config={
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "threads": settings.engine_threads,
                "memory_limit": settings.engine_memory_limit,
            }
        )
        # Dates of timestamps are UTC dates, as Spark's with spark.sql.session.timeZone=UTC.
        self._con.execute("SET TimeZone = 'UTC'")
        for macro in SPARK_MACROS.values():
            self._con.execute(macro)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._con.close()

    def register(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table queryable as ``name`` (zero copy)."""
        self._con.register(name, table)

    def materialize(self, name: str, sql: str) -> None:
        """Run ``sql`` once into a temporary table ``name`` that later queries read."""
        self._con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")

    def query(self, sql: str) -> pa.Table:
        return self._con.sql(sql).to_arrow_table()

    def run(self, name: str, **params: object) -> pa.Table:
        """``sql/<name>.sql`` rendered with ``params``, as an Arrow table."""
        return self.query(render(sql_text(name), params))

    def names(self) -> Iterable[str]:
        return [row[0] for row in self._con.execute("SHOW TABLES").fetchall()]
