"""Interactions and the per-member temporal holdout."""

from __future__ import annotations

import numpy as np
import pytest

from recsys_pipelines.learning.interactions import Interactions, temporal_holdout


def test_repeats_collapse_to_the_first_instant_best_rating_and_any_completion() -> None:
    data = Interactions.build(
        ["u1", "u1", "u1", "u2"],
        ["a", "a", "b", "a"],
        [30, 10, 20, 5],
        ["a", "b", "c"],
        ratings=[4, 2, 0, 5],
        completed=[False, True, False, False],
        users=["u3"],
    )
    assert data.users == ("u1", "u2", "u3")
    assert data.titles == ("a", "b", "c")
    rows = list(
        zip(
            data.user.tolist(),
            data.title.tolist(),
            data.time_us.tolist(),
            data.rating.tolist(),
            data.completed.tolist(),
            strict=True,
        )
    )
    assert rows == [(0, 0, 10, 4, True), (0, 1, 20, 0, False), (1, 0, 5, 5, False)]
    assert data.title_counts().tolist() == [2, 1, 0]
    assert [t.tolist() for t in data.per_user()] == [[0, 1], [0], []]


def test_holdout_keeps_the_latest_share_of_each_eligible_member() -> None:
    # u1: 10 interactions -> the latest 2 held out; u2: 3 -> 1 (at least one); u3: 2 -> none.
    users = ["u1"] * 10 + ["u2"] * 3 + ["u3"] * 2
    titles = [f"t{i}" for i in range(10)] + ["t0", "t1", "t2"] + ["t0", "t1"]
    times = [*list(range(10, 0, -1)), 1, 3, 2, 1, 2]
    data = Interactions.build(users, titles, times)
    train, test = temporal_holdout(data, fraction=0.2, min_interactions=3)
    held = {(data.users[u], data.titles[t]) for u, t in zip(test.user, test.title, strict=True)}
    # u1's latest are t0 (time 10) and t1 (time 9); u2's latest is t1 (time 3).
    assert held == {("u1", "t0"), ("u1", "t1"), ("u2", "t1")}
    assert len(train) + len(test) == len(data)
    for member in range(data.n_users):
        before = train.time_us[train.user == member]
        after = test.time_us[test.user == member]
        if before.size and after.size:
            assert before.max() <= after.min()


def test_ties_in_time_are_broken_by_title_so_the_split_is_deterministic() -> None:
    data = Interactions.build(["u"] * 4, ["d", "b", "c", "a"], [5, 5, 5, 5])
    _, test = temporal_holdout(data, fraction=0.5, min_interactions=2)
    assert [data.titles[t] for t in test.title] == ["c", "d"]


def test_bad_split_parameters() -> None:
    data = Interactions.build(["u"], ["a"], [1])
    with pytest.raises(ValueError, match="fraction"):
        temporal_holdout(data, fraction=1.0)
    with pytest.raises(ValueError, match="at least 2"):
        temporal_holdout(data, min_interactions=1)
    assert len(temporal_holdout(data)[1]) == 0


def test_empty_interactions() -> None:
    data = Interactions.build([], [], np.zeros(0, np.int64), ["a"])
    assert len(data) == 0
    assert data.n_titles == 1
    train, test = temporal_holdout(data)
    assert len(train) == len(test) == 0
