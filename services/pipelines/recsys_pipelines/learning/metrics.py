"""Offline ranking metrics over top-K lists, against held-out interactions.

    scores = evaluate(recommended, relevant, train_counts, k=10)

``recommended[i]`` is member i's ranked list of title indices (``-1`` pads a short list),
``relevant[i]`` the titles held out for that member. Definitions (binary relevance; a member
with no held-out title is not averaged):

- precision@K = hits in the top K / K
- recall@K = hits in the top K / number of held-out titles
- NDCG@K = DCG / ideal DCG, DCG = sum over hits of 1 / log2(rank + 1) (rank from 1), the ideal
  being min(K, held-out) hits at the top
- MAP@K = mean over members of AP@K = (sum over hit ranks r of precision@r) / min(K, held-out)
- coverage = distinct titles recommended to anyone / titles in the catalog
- popularity bias = mean over every recommended title of its popularity percentile in the
  training data (1.0 the most played title, 0.0 the least; ties share the mean percentile):
  0.5 would be recommending at random with respect to popularity
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["METRIC_NAMES", "Scores", "evaluate", "popularity_percentile"]

METRIC_NAMES = ("precision", "recall", "ndcg", "map", "coverage", "popularity_bias")


@dataclass(frozen=True)
class Scores:
    k: int
    users: int
    precision: float
    recall: float
    ndcg: float
    map: float
    coverage: float
    popularity_bias: float

    def as_dict(self) -> dict[str, float]:
        """``{"recall@10": ..., "coverage": ...}``: the names used in manifests and tables."""
        at = f"@{self.k}"
        return {
            f"precision{at}": self.precision,
            f"recall{at}": self.recall,
            f"ndcg{at}": self.ndcg,
            f"map{at}": self.map,
            "coverage": self.coverage,
            "popularity_bias": self.popularity_bias,
        }


def popularity_percentile(counts: npt.NDArray[np.integer]) -> npt.NDArray[np.float64]:
    """Each title's popularity percentile in [0, 1] (ties get their mean rank)."""
    n = counts.shape[0]
    if n <= 1:
        return np.ones(n)
    # Average ranks for ties: rank of a value = mean of its first and last sorted position.
    order = np.argsort(counts, kind="stable")
    sorted_counts = counts[order]
    first = np.searchsorted(sorted_counts, sorted_counts, side="left")
    last = np.searchsorted(sorted_counts, sorted_counts, side="right") - 1
    ranks = np.empty(n)
    ranks[order] = (first + last) / 2.0
    return np.asarray(ranks / (n - 1), dtype=np.float64)


def evaluate(
    recommended: npt.NDArray[np.integer],
    relevant: Sequence[npt.NDArray[np.integer]],
    train_counts: npt.NDArray[np.integer],
    *,
    k: int,
) -> Scores:
    """The metrics of ``recommended[:, :k]`` against ``relevant`` (see the module docstring)."""
    if recommended.ndim != 2 or recommended.shape[0] != len(relevant):
        raise ValueError("recommended must be one row per member of relevant")
    if k < 1:
        raise ValueError("k must be at least 1")
    top = recommended[:, :k]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    precision, recall, ndcg, ap = [], [], [], []
    for row, truth in zip(top, relevant, strict=True):
        if len(truth) == 0:
            continue
        hits = np.isin(row, truth) & (row >= 0)
        n_hits = int(hits.sum())
        ideal = min(k, len(truth))
        precision.append(n_hits / k)
        recall.append(n_hits / len(truth))
        ndcg.append(float(discounts[hits[: len(discounts)]].sum() / discounts[:ideal].sum()))
        cumulative = np.cumsum(hits) / np.arange(1, hits.shape[0] + 1)
        ap.append(float(cumulative[hits].sum() / ideal))
    shown = top[top >= 0]
    n_titles = train_counts.shape[0]
    percentile = popularity_percentile(train_counts)
    return Scores(
        k=k,
        users=len(precision),
        precision=_mean(precision),
        recall=_mean(recall),
        ndcg=_mean(ndcg),
        map=_mean(ap),
        coverage=len(np.unique(shown)) / n_titles if n_titles else 0.0,
        popularity_bias=float(percentile[shown].mean()) if shown.size else 0.0,
    )


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0
