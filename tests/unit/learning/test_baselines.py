"""Baselines: EASE's closed form, the exclusion of played titles, and the factor models."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp  # type: ignore[import-untyped]

from recsys_pipelines.learning.baselines import (
    ALS,
    BPR,
    Ease,
    Popularity,
    ease_path,
    recommend,
    top_k_excluding,
)
from recsys_pipelines.learning.interactions import Interactions


def _data() -> Interactions:
    rng = np.random.default_rng(3)
    users = [f"u{i}" for i in rng.integers(0, 30, 400)]
    titles = [f"t{i:02d}" for i in rng.zipf(1.5, 400) % 25]
    return Interactions.build(
        users, titles, rng.integers(0, 10**9, 400), [f"t{i:02d}" for i in range(30)]
    )


def test_ease_matches_the_closed_form_with_a_direct_inverse() -> None:
    data = _data()
    lam = 7.0
    ease = Ease(lam=lam, max_titles=10_000).fit(data)
    kept = np.flatnonzero(data.title_counts() > 0)
    x = np.zeros((data.n_users, data.n_titles))
    x[data.user, data.title] = 1.0
    x = x[:, kept]
    p = np.linalg.inv(x.T @ x + lam * np.eye(len(kept)))
    b = np.eye(len(kept)) - p / np.diag(p)  # Steck 2019, eq. 8
    users = np.arange(data.n_users)
    want = x @ b
    got = ease.scores(users)
    assert np.allclose(got[:, kept], want, atol=1e-4)
    # titles nobody played cannot be scored by EASE
    assert np.all(np.isneginf(np.delete(got, kept, axis=1)))


def test_ease_path_gives_one_model_per_lambda_and_max_titles_keeps_the_most_played() -> None:
    data = _data()
    models = list(ease_path(data, [1.0, 100.0], max_titles=5))
    assert [m.lam for m in models] == [1.0, 100.0]
    top5 = set(np.argsort(-data.title_counts(), kind="stable")[:5].tolist())
    assert set(np.flatnonzero(np.isfinite(models[0].scores(np.asarray([0]))[0])).tolist()) == top5


def test_top_k_never_returns_an_excluded_title_and_pads() -> None:
    scores = np.asarray([[5.0, 4.0, 3.0, 2.0], [1.0, 2.0, 3.0, 4.0]], np.float32)
    excluded = sp.csr_matrix(np.asarray([[1, 0, 1, 0], [1, 1, 1, 0]], np.float32))
    top = top_k_excluding(scores, excluded, 3)
    assert top.tolist() == [[1, 3, -1], [3, -1, -1]]


@pytest.mark.parametrize(
    "model",
    [Popularity(), Ease(lam=10.0), ALS(factors=4, iterations=3), BPR(factors=4, iterations=5)],
    ids=["popularity", "ease", "als", "bpr"],
)
def test_recommendations_exclude_played_titles(model: object) -> None:
    data = _data()
    fitted = model.fit(data)  # type: ignore[attr-defined]
    users = np.arange(data.n_users)
    top = recommend(fitted, data, users, k=10)
    played = data.per_user()
    for member in users:
        shown = [t for t in top[member].tolist() if t >= 0]
        assert len(shown) == len(set(shown))
        assert not set(shown) & set(played[member].tolist())


def test_popularity_ranks_by_training_counts() -> None:
    data = Interactions.build(["a", "b", "c", "c"], ["x", "x", "y", "x"], [1, 2, 3, 4], ["z"])
    top = recommend(Popularity().fit(data), data, np.asarray([0]), k=3)
    # member a played x: y (1 play) comes before z (none)
    assert [data.titles[t] for t in top[0].tolist() if t >= 0] == ["y", "z"]
