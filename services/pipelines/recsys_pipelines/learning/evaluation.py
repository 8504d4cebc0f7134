"""The offline evaluation: every model and baseline on the held-out split, as one table.

Rows are ``EvalRow(model, scores, params, seconds)``; :func:`format_table` prints them and
:func:`gold_rows` turns them into the rows of ``gold_offline_evaluation``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from recsys_pipelines.learning.metrics import Scores

__all__ = ["EvalRow", "format_table", "gold_rows"]


@dataclass(frozen=True)
class EvalRow:
    model: str  # popularity, ease, als, bpr, two_tower, two_tower+ranker
    scores: Scores
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # training (and tuning) wall time


def format_table(rows: list[EvalRow]) -> str:
    if not rows:
        return "(no evaluation: no member has enough interactions to hold some out)"
    k = rows[0].scores.k
    head = (
        f"{'model':18s} {'P@' + str(k):>7s} {'R@' + str(k):>7s} {'NDCG@' + str(k):>8s} "
        f"{'MAP@' + str(k):>7s} {'cover':>6s} {'popbias':>7s} {'users':>6s} {'fit s':>6s}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        s = r.scores
        lines.append(
            f"{r.model:18s} {s.precision:7.4f} {s.recall:7.4f} {s.ndcg:8.4f} {s.map:7.4f} "
            f"{s.coverage:6.3f} {s.popularity_bias:7.3f} {s.users:6d} {r.seconds:6.1f}"
        )
    return "\n".join(lines)


def gold_rows(
    rows: list[EvalRow],
    *,
    as_of: date,
    evaluated_at: datetime,
    split: str,
    train_interactions: int,
    test_interactions: int,
    versions: dict[str, str],
) -> list[dict[str, Any]]:
    return [
        {
            "as_of_date": as_of,
            "evaluated_at": evaluated_at,
            "model": r.model,
            "k": r.scores.k,
            "users": r.scores.users,
            "precision_at_k": r.scores.precision,
            "recall_at_k": r.scores.recall,
            "ndcg_at_k": r.scores.ndcg,
            "map_at_k": r.scores.map,
            "coverage": r.scores.coverage,
            "popularity_bias": r.scores.popularity_bias,
            "fit_seconds": r.seconds,
            "params": json.dumps(r.params, sort_keys=True, default=str),
            "split": split,
            "train_interactions": train_interactions,
            "test_interactions": test_interactions,
            "two_tower_version": versions.get("two_tower"),
            "ranker_version": versions.get("ranker"),
        }
        for r in rows
    ]
