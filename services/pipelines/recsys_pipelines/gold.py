"""Silver -> gold: the analytics questions of seed 001 that our event schema can answer.

    rows = answer(catalog, lake, settings, "top-titles", as_of=date(2026, 11, 28), country="US")
    materialize_gold(catalog, lake, settings, as_of)   # the daily run: one partition per as-of

Each question is one SQL file over silver (Spark SQL, like the silver transforms). ``answer``
computes it for any as-of date straight from silver; the daily run also stores it in the gold
tables so dashboards read a table instead of recomputing. Questions the seed asks that our events
cannot answer are listed in :data:`UNANSWERABLE` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from pyiceberg.catalog import Catalog

from recsys.config import LakeSettings
from recsys_pipelines.contracts import (
    GOLD_COMPLETION_RATE,
    GOLD_OVERLAPPING_SESSIONS,
    GOLD_TOP_TITLES_7D,
    SILVER_PLAYBACK,
    SILVER_SESSIONS,
    TableContract,
)
from recsys_pipelines.dates import add_months, check_not_future
from recsys_pipelines.engine import Engine
from recsys_pipelines.lakeio import read_titles
from recsys_pipelines.questions import SUMMARIES, UNANSWERABLE
from recsys_pipelines.settings import PipelineSettings
from recsys_pipelines.tables import conform, open_table, read_table, replace_partitions

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

__all__ = ["QUESTIONS", "UNANSWERABLE", "Question", "answer", "materialize_gold"]

TOP_WINDOW_DAYS = 7
RELEASE_WINDOW_MONTHS = 6


@dataclass(frozen=True)
class Question:
    name: str
    contract: TableContract
    summary: str
    # The silver table the SQL reads (as `source_view`) and its date range for an as-of date.
    source: TableContract
    source_view: str
    source_range: Callable[[date], tuple[date | None, date]]
    params: Callable[[date], Mapping[str, object]]
    order_by: tuple[str, ...]


QUESTIONS: Mapping[str, Question] = {
    q.name: q
    for q in (
        Question(
            "top-titles",
            GOLD_TOP_TITLES_7D,
            SUMMARIES["top-titles"],
            SILVER_PLAYBACK,
            "playback",
            lambda d: (d - timedelta(days=TOP_WINDOW_DAYS - 1), d),
            lambda d: {"first": d - timedelta(days=TOP_WINDOW_DAYS - 1), "as_of": d},
            ("country", "rank"),
        ),
        Question(
            "completion-rate",
            GOLD_COMPLETION_RATE,
            SUMMARIES["completion-rate"],
            SILVER_PLAYBACK,
            "playback",
            # Nothing released after the window's start can have been watched before it.
            lambda d: (add_months(d, -RELEASE_WINDOW_MONTHS), d),
            lambda d: {"as_of": d, "released_after": add_months(d, -RELEASE_WINDOW_MONTHS)},
            ("country", "title_id"),
        ),
        Question(
            "overlapping-sessions",
            GOLD_OVERLAPPING_SESSIONS,
            SUMMARIES["overlapping-sessions"],
            SILVER_SESSIONS,
            "sessions",
            lambda d: (d - timedelta(days=1), d),
            lambda d: {"as_of": d},
            ("user_id", "a_started_at", "session_b"),
        ),
    )
}


def _source_rows(catalog: Catalog, lake: LakeSettings, question: Question, as_of: date) -> pa.Table:
    first, last = question.source_range(as_of)
    return read_table(catalog, lake, question.source, first, last)


def answer(
    catalog: Catalog,
    lake: LakeSettings,
    settings: PipelineSettings,
    name: str,
    as_of: date,
    country: str | None = None,
) -> pa.Table:
    """The question's rows for ``as_of`` (optionally one country), sorted for printing."""
    question = QUESTIONS[name]
    check_not_future(as_of, "as-of date")
    rows = _compute(catalog, lake, settings, question, as_of)
    if country is not None and "country" in rows.column_names:
        import pyarrow.compute as pc  # type: ignore[import-untyped]

        rows = rows.filter(pc.equal(rows.column("country"), country.upper()))
    return rows.sort_by([(c, "ascending") for c in question.order_by])


def _compute(
    catalog: Catalog,
    lake: LakeSettings,
    settings: PipelineSettings,
    question: Question,
    as_of: date,
) -> pa.Table:
    with Engine(settings) as engine:
        engine.register(question.source_view, _source_rows(catalog, lake, question, as_of))
        engine.register("titles", read_titles(catalog, lake))
        rows = engine.run(question.contract.name, **question.params(as_of))
    return conform(rows, question.contract)


def materialize_gold(
    catalog: Catalog, lake: LakeSettings, settings: PipelineSettings, as_of: date
) -> dict[str, int]:
    """Every question for ``as_of`` into its gold table (that date's partition replaced)."""
    written: dict[str, int] = {}
    for question in QUESTIONS.values():
        rows = _compute(catalog, lake, settings, question, as_of)
        table = open_table(catalog, lake, question.contract)
        replace_partitions(
            table, question.contract, rows, [as_of], {"recsys.gold.as_of": as_of.isoformat()}
        )
        written[question.contract.name] = rows.num_rows
    return written
