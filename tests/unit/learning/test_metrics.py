"""Every offline metric against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys_pipelines.learning.metrics import evaluate, popularity_percentile


def _lists(*rows: list[int]) -> np.ndarray:
    return np.asarray(rows, np.int64)


def test_metrics_of_two_members_by_hand() -> None:
    # member 0: hits at ranks 1 and 3 of 4 (held out {1, 3, 9}); member 1: a hit at rank 2 of
    # 4 (held out {5}).
    recommended = _lists([1, 2, 3, 4], [6, 5, 7, 8])
    relevant = [np.asarray([1, 3, 9]), np.asarray([5])]
    counts = np.asarray([0, 5, 4, 3, 2, 9, 1, 1, 0, 6])
    s = evaluate(recommended, relevant, counts, k=4)
    assert s.users == 2
    assert s.precision == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert s.recall == pytest.approx((2 / 3 + 1 / 1) / 2)
    dcg0 = 1 / math.log2(2) + 1 / math.log2(4)
    idcg0 = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    ndcg1 = (1 / math.log2(3)) / 1.0
    assert s.ndcg == pytest.approx((dcg0 / idcg0 + ndcg1) / 2)
    ap0 = (1 / 1 + 2 / 3) / 3  # precision at hit ranks / min(k, held out)
    ap1 = (1 / 2) / 1
    assert s.map == pytest.approx((ap0 + ap1) / 2)
    # titles 1, 2, 3, 4, 5, 6, 7, 8 of 10 recommended
    assert s.coverage == pytest.approx(8 / 10)


def test_popularity_percentile_with_ties() -> None:
    # counts 0, 5, 5, 9: ranks 0, 1.5, 1.5, 3 over n - 1 = 3
    assert popularity_percentile(np.asarray([0, 5, 5, 9])).tolist() == pytest.approx(
        [0.0, 0.5, 0.5, 1.0]
    )


def test_popularity_bias_is_the_mean_percentile_of_what_is_shown() -> None:
    counts = np.asarray([0, 5, 5, 9])  # percentiles 0, .5, .5, 1
    s = evaluate(_lists([3, 0], [3, 1]), [np.asarray([2]), np.asarray([2])], counts, k=2)
    assert s.popularity_bias == pytest.approx((1.0 + 0.0 + 1.0 + 0.5) / 4)
    assert s.recall == 0.0
    assert s.ndcg == 0.0
    assert s.map == 0.0


def test_padding_and_members_without_held_out_titles() -> None:
    # -1 pads a short list and is never a hit; a member with nothing held out is not averaged.
    s = evaluate(
        _lists([4, -1, -1], [1, 2, 3]),
        [np.asarray([4]), np.asarray([], np.int64)],
        np.ones(5, np.int64),
        k=3,
    )
    assert s.users == 1
    assert s.precision == pytest.approx(1 / 3)
    assert s.recall == 1.0
    assert s.ndcg == 1.0
    assert s.map == 1.0
    assert s.coverage == pytest.approx(4 / 5)  # 4, 1, 2, 3


def test_k_cuts_the_lists() -> None:
    s = evaluate(_lists([0, 1, 2]), [np.asarray([2])], np.ones(3, np.int64), k=2)
    assert s.recall == 0.0
    assert s.as_dict()["recall@2"] == 0.0


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="one row per member"):
        evaluate(_lists([0]), [], np.ones(1, np.int64), k=1)
    with pytest.raises(ValueError, match="k must"):
        evaluate(_lists([0]), [np.asarray([0])], np.ones(1, np.int64), k=0)
