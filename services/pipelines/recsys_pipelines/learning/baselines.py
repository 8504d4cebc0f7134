"""The baselines the learned models are measured against: popularity, EASE, ALS and BPR.

    model = Ease(lam=200.0).fit(train)
    top = recommend(model, train, users, k=10)   # never a title the member already played

Every model scores members x titles densely (our catalogs hold at most tens of thousands of
titles, scored a block of members at a time). EASE is Steck's closed form (WWW 2019,
"Embarrassingly Shallow Autoencoders"): B = I - P diagMat(1 / diag(P)), P = (X'X + lambda I)^-1,
computed once per lambda from one eigendecomposition of X'X so tuning lambda costs a matrix
product per value. ALS (Hu, Koren, Volinsky 2008) and BPR (Rendle et al. 2009) are the
``implicit`` package's CPU implementations.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from recsys_pipelines.learning.interactions import Interactions

__all__ = [
    "ALS",
    "BPR",
    "Ease",
    "Popularity",
    "Scorer",
    "ease_path",
    "exclusion_matrix",
    "recommend",
    "top_k_excluding",
]

F32 = npt.NDArray[np.float32]
USER_BLOCK = 1024


class Scorer(Protocol):
    """Anything that scores every title for a block of members."""

    def scores(self, users: npt.NDArray[np.integer]) -> F32: ...


def exclusion_matrix(data: Interactions) -> Any:
    """A member x title CSR matrix of ones where the member already played the title."""
    import scipy.sparse as sp  # type: ignore[import-untyped]

    values = np.ones(len(data), np.float32)
    matrix = sp.csr_matrix(
        (values, (data.user, data.title)), shape=(data.n_users, data.n_titles), dtype=np.float32
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def top_k_excluding(scores: F32, excluded: Any, k: int) -> npt.NDArray[np.int64]:
    """Top ``k`` title indices per row, best first, never an ``excluded`` (CSR rows) one;
    ``-1`` pads a row when fewer than ``k`` titles are left."""
    scores = scores.copy()
    rows, cols = excluded.nonzero()
    scores[rows, cols] = -np.inf
    k_eff = min(k, scores.shape[1])
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    top = np.take_along_axis(part, order, axis=1).astype(np.int64)
    top[~np.isfinite(np.take_along_axis(part_scores, order, axis=1))] = -1
    if k_eff < k:
        top = np.pad(top, ((0, 0), (0, k - k_eff)), constant_values=-1)
    return top


def _blocks(users: npt.NDArray[np.integer]) -> Iterator[npt.NDArray[np.integer]]:
    for start in range(0, users.shape[0], USER_BLOCK):
        yield users[start : start + USER_BLOCK]


def recommend(
    model: Scorer, seen: Interactions, users: npt.NDArray[np.integer], *, k: int
) -> npt.NDArray[np.int64]:
    """Top ``k`` per member of ``users`` (indices), excluding the titles of ``seen``."""
    excluded = exclusion_matrix(seen)
    parts = [top_k_excluding(model.scores(block), excluded[block], k) for block in _blocks(users)]
    return np.concatenate(parts) if parts else np.zeros((0, k), np.int64)


def _threads() -> int:
    # Training shares the machine with the servers: never more than two threads.
    return max(1, min(2, os.cpu_count() or 1))


@dataclass
class Popularity:
    """The most played titles of the training data, for everyone."""

    counts: F32 = field(default_factory=lambda: np.zeros(0, np.float32))

    def fit(self, train: Interactions) -> Popularity:
        self.counts = train.title_counts().astype(np.float32)
        return self

    def scores(self, users: npt.NDArray[np.integer]) -> F32:
        return np.broadcast_to(self.counts, (users.shape[0], self.counts.shape[0])).copy()


@dataclass
class Ease:
    """EASE over the titles with at least one training interaction (at most ``max_titles`` of
    the most played: the Gram matrix is titles^2 floats and its inverse titles^3 work)."""

    lam: float = 200.0
    max_titles: int = 12_000
    _weights: F32 = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    _titles: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    _x: Any = None
    _n_titles: int = 0

    def fit(self, train: Interactions) -> Ease:
        return next(iter(ease_path(train, [self.lam], max_titles=self.max_titles)))

    def scores(self, users: npt.NDArray[np.integer]) -> F32:
        out = np.full((users.shape[0], self._n_titles), -np.inf, np.float32)
        block = self._x[users].toarray().astype(np.float32)
        out[:, self._titles] = block @ self._weights
        return out


def _ease_gram(train: Interactions, max_titles: int) -> tuple[npt.NDArray[np.int64], Any, Any]:
    """(titles EASE covers: the ``max_titles`` most played, their member x title matrix, its
    Gram matrix)."""
    counts = train.title_counts()
    kept = np.flatnonzero(counts > 0)
    if kept.shape[0] > max_titles:
        kept = np.sort(kept[np.argsort(-counts[kept], kind="stable")[:max_titles]])
    x = exclusion_matrix(train)[:, kept]
    return kept.astype(np.int64), x, np.asarray((x.T @ x).toarray(), dtype=np.float64)


def ease_weights(
    train: Interactions, lam: float, *, max_titles: int = 12_000
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """(the titles EASE covers, its item-to-item weights B over them) for one lambda: one
    inverse, cheaper than :func:`ease_path`'s eigendecomposition when one lambda is wanted.
    ``B[i, j]`` is how much title i in a history raises title j's score."""
    kept, _, gram = _ease_gram(train, max_titles)
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    weights = -p / np.diag(p)
    np.fill_diagonal(weights, 0.0)
    return kept, weights


def ease_path(
    train: Interactions, lambdas: Sequence[float], *, max_titles: int = 12_000
) -> Iterator[Ease]:
    """A fitted EASE per lambda, sharing one eigendecomposition of the Gram matrix."""
    kept, x, gram = _ease_gram(train, max_titles)
    eigenvalues, vectors = np.linalg.eigh(gram)
    for lam in lambdas:
        p = (vectors / (eigenvalues + lam)) @ vectors.T
        weights = -p / np.diag(p)
        np.fill_diagonal(weights, 0.0)
        yield Ease(
            lam=lam,
            max_titles=max_titles,
            _weights=weights.astype(np.float32),
            _titles=kept.astype(np.int64),
            _x=x,
            _n_titles=train.n_titles,
        )


@dataclass
class _Factors:
    """Scores from member and title factor matrices (ALS, BPR)."""

    user_factors: F32 = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    item_factors: F32 = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    def scores(self, users: npt.NDArray[np.integer]) -> F32:
        return np.asarray(self.user_factors[users] @ self.item_factors.T, dtype=np.float32)

    def _fit_implicit(self, model: Any, train: Interactions, weights: F32 | None = None) -> None:
        matrix = exclusion_matrix(train)
        if weights is not None:
            matrix = matrix.multiply(weights).tocsr()
        model.fit(matrix, show_progress=False)
        self.user_factors = np.asarray(model.user_factors, np.float32)
        self.item_factors = np.asarray(model.item_factors, np.float32)


@dataclass
class ALS(_Factors):
    """Implicit ALS: confidence 1 + alpha for a played title."""

    factors: int = 64
    regularization: float = 0.05
    alpha: float = 10.0
    iterations: int = 15
    seed: int = 0

    def fit(self, train: Interactions) -> ALS:
        from implicit.cpu.als import AlternatingLeastSquares  # type: ignore[import-untyped]
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        # implicit's ALS parallelises itself; a threaded BLAS under it only contends (and
        # implicit warns about it when the model is built).
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
                num_threads=_threads(),
            )
            self._fit_implicit(model, train)
        return self


@dataclass
class BPR(_Factors):
    """Bayesian personalised ranking with uniformly sampled negatives."""

    factors: int = 64
    learning_rate: float = 0.05
    regularization: float = 0.01
    iterations: int = 100
    seed: int = 0

    def fit(self, train: Interactions) -> BPR:
        from implicit.cpu.bpr import BayesianPersonalizedRanking  # type: ignore[import-untyped]

        model = BayesianPersonalizedRanking(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            random_state=self.seed,
            num_threads=_threads(),
        )
        self._fit_implicit(model, train)
        return self
