"""The ranker's item-neighbour feature: EASE's weights, cut per title, equal to EASE's own
score when nothing is cut, the same in training and serving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys.models.vectorize import (
    CROSS_DIM,
    ItemNeighbours,
    TitleInputs,
    cross_features,
    vectorize_users,
)
from recsys_pipelines.learning.baselines import Ease
from recsys_pipelines.learning.examples import make_spec
from recsys_pipelines.learning.fit import LearningConfig, item_neighbours
from tests.unit.learning.test_baselines import _data


def test_uncut_neighbour_scores_are_the_ease_scores() -> None:
    data = _data()
    spec = make_spec(data)
    lam = 7.0
    table = item_neighbours(data, spec, LearningConfig(neighbours=1000), lam)
    ease = Ease(lam=lam, max_titles=10_000).fit(data)
    want = ease.scores(np.arange(data.n_users))
    per_user = data.per_user()
    played = np.flatnonzero(data.title_counts() > 0)
    for user in range(data.n_users):
        history = per_user[user].astype(np.int64) + 1  # spec indices
        got = table.scores(history, played + 1)
        assert got == pytest.approx(want[user, played], abs=1e-4)


def test_a_cut_keeps_each_titles_strongest_neighbours() -> None:
    data = _data()
    spec = make_spec(data)
    full = item_neighbours(data, spec, LearningConfig(neighbours=1000), 7.0)
    cut = item_neighbours(data, spec, LearningConfig(neighbours=3), 7.0)
    assert cut.index.shape == (spec.n_titles, 3)
    for j in np.flatnonzero(data.title_counts() > 0) + 1:
        strongest = np.sort(full.weight[j])[::-1][:3]
        assert np.sort(cut.weight[j])[::-1] == pytest.approx(strongest)
    # a title nobody played has no neighbours; neither has the unknown title (index 0)
    unplayed = np.flatnonzero(data.title_counts() == 0) + 1
    assert not cut.index[[0, *unplayed]].any()
    assert not ItemNeighbours.empty(5).scores(np.asarray([1, 2]), np.asarray([3])).any()


def test_scores_by_hand_and_the_file_round_trips(tmp_path: Path) -> None:
    table = ItemNeighbours(
        np.asarray([[0, 0], [2, 3], [1, 0], [1, 2]], np.int64),
        np.asarray([[0, 0], [0.5, 0.25], [2.0, 0], [1.0, -1.0]], np.float32),
    )
    history = np.asarray([2, 0, 0], np.int64)  # padding (0) is never a neighbour
    assert table.scores(history, np.asarray([1, 2, 3])).tolist() == [0.5, 0.0, -1.0]
    table.save(tmp_path / "n.npz")
    again = ItemNeighbours.load(tmp_path / "n.npz", 4)
    assert np.array_equal(again.index, table.index)
    assert np.array_equal(again.weight, table.weight)
    with pytest.raises(ValueError, match="spec wants 5 rows"):
        ItemNeighbours.load(tmp_path / "n.npz", 5)
    np.savez(tmp_path / "bad.npz", index=np.asarray([[9]]), weight=np.asarray([[1.0]]))
    with pytest.raises(ValueError, match="outside the spec"):
        ItemNeighbours.load(tmp_path / "bad.npz", 1)


def test_the_neighbour_columns_are_raw_and_standardised_within_each_list() -> None:
    spec = make_spec(_data())
    users = vectorize_users(spec, {}, 4)
    none = TitleInputs(np.zeros(4, np.int64), np.zeros((4, spec.title_dense_dim), np.float32))
    cross = cross_features(
        users,
        none,
        np.asarray([0.9, 0.5, 0.8, 0.1], np.float32),
        np.asarray([0, 1, 0, 1], np.int64),  # two members, two candidates each
        np.asarray([1.0, 3.0, 7.0, 7.0], np.float32),
    )
    assert cross.shape == (4, CROSS_DIM)
    assert cross[:, 4].tolist() == [1.0, 3.0, 5.0, 5.0]  # clipped at 5
    assert cross[:, 5].tolist() == pytest.approx([-1.0, 1.0, 0.0, 0.0], abs=1e-4)
    without = cross_features(users, none, np.asarray([0.9, 0.5, 0.8, 0.1], np.float32))
    assert not without[:, 4:].any()
