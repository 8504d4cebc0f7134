"""The one vectorisation of training and serving: defaults, vocabularies, the spec file."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from recsys.catalog import GENRES
from recsys.models.vectorize import (
    FeatureSpec,
    cross_features,
    vectorize_titles,
    vectorize_users,
)


def _spec() -> FeatureSpec:
    return FeatureSpec(
        titles=("a", "b", "c"), countries=("GB", "US"), languages=("en",), history_length=3
    )


def test_missing_features_are_the_registry_defaults() -> None:
    spec = _spec()
    empty = vectorize_users(spec, {}, 2)
    nones = vectorize_users(spec, {"country": [None, None], "watch_hours_30d": [None, None]}, 2)
    assert empty.dense.shape == (2, spec.user_dense_dim)
    assert np.array_equal(empty.dense, nones.dense)
    assert np.array_equal(empty.cat, nones.cat)
    assert empty.history.tolist() == [[0, 0, 0], [0, 0, 0]]
    assert empty.cat.tolist() == [[0, 0, 0], [0, 0, 0]]


def test_history_keeps_the_newest_known_titles_and_vocabularies_map_unknowns_to_zero() -> None:
    spec = _spec()
    users = vectorize_users(
        spec,
        {
            "recently_watched_title_ids": [["c", "zz", "a", "b", "a"]],
            "country": ["US"],
            "subscription_tier": ["premium"],
            "current_device_type": ["martian"],
        },
    )
    assert users.history.tolist() == [[3, 1, 2]]  # "zz" unknown, dropped; at most 3
    assert users.cat.tolist() == [[2, 3, 0]]


def test_the_same_columns_give_the_same_vectors_row_by_row_or_together() -> None:
    spec = _spec()
    columns: dict[str, list[Any]] = {
        "genre_affinity_vector": [[1.0] + [0.0] * 17, [0.5, 0.5] + [0.0] * 16],
        "preferred_time_of_day": [21, -1],
        "language_preferences": [["en", "fr"], []],
        "current_genre_last_30min": ["drama", ""],
        "watch_hours_90d": [3.5, 0.0],
    }
    both = vectorize_users(spec, columns)
    for row in range(2):
        one = vectorize_users(spec, {k: [v[row]] for k, v in columns.items()})
        assert np.array_equal(one.dense[0], both.dense[row])


def test_title_inputs_and_cross_features() -> None:
    spec = _spec()
    titles = vectorize_titles(
        spec,
        {"title_genres": [["drama", "action"], []], "release_age_days": [365, -1]},
        ["b", "nope"],
    )
    assert titles.title.tolist() == [2, 0]
    drama, action = GENRES.index("drama"), GENRES.index("action")
    assert titles.dense[0, drama] == 1.0
    assert titles.dense[0, action] == 0.5
    user = vectorize_users(
        spec,
        {"genre_affinity_vector": [[0.0] * 18], "current_genre_last_30min": ["drama"]},
    ).take(np.asarray([0, 0]))
    cross = cross_features(user, titles, np.asarray([0.3, -0.1], np.float32))
    assert cross[:, 0].tolist() == pytest.approx([0.0, -4.0])  # gap to the best, x10
    assert cross[:, 3].tolist() == [1.0, 0.0]  # the current genre is one of b's


def test_spec_round_trips_and_a_corrupt_spec_is_one_clear_error() -> None:
    spec = _spec()
    assert FeatureSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="corrupt feature spec"):
        FeatureSpec.from_json(b'{"version": 1, "titles": ["a"]}')
    with pytest.raises(ValueError, match="corrupt feature spec"):
        FeatureSpec.from_json(b"not json")
    with pytest.raises(ValueError, match="version"):
        FeatureSpec.from_json(spec.to_json().replace(b'"version": 1', b'"version": 99'))


def test_a_column_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="expected 2"):
        vectorize_users(_spec(), {"country": ["US"]}, 2)


def test_a_spec_without_batch_features_reads_them_as_defaults_and_keeps_the_rest() -> None:
    with_batch = _spec()
    without = FeatureSpec.from_json(
        FeatureSpec(
            titles=with_batch.titles,
            countries=with_batch.countries,
            languages=with_batch.languages,
            history_length=3,
            batch_features=False,
        ).to_json()
    )
    assert not without.batch_features
    columns: dict[str, list[Any]] = {
        "recently_watched_title_ids": [["b"]],
        "country": ["US"],
        "watch_hours_30d": [12.0],
        "current_device_type": ["tv"],
    }
    read = vectorize_users(without, columns)
    plain = vectorize_users(with_batch, columns)
    assert read.history.tolist() == plain.history.tolist() == [[2, 0, 0]]
    # country is a batch feature
    assert (read.cat[0, 0], plain.cat[0, 0]) == (0, 2)
    assert read.cat[0, 2] == plain.cat[0, 2] != 0  # the device is real-time: kept
    defaults = vectorize_users(
        without, {"recently_watched_title_ids": [["b"]], "current_device_type": ["tv"]}
    )
    assert np.array_equal(read.dense, defaults.dense)
    assert not np.array_equal(read.dense, plain.dense)


def test_a_spec_file_from_before_the_batch_features_flag_reads_them() -> None:
    raw = json.loads(_spec().to_json())
    del raw["batch_features"]
    assert FeatureSpec.from_json(json.dumps(raw).encode()).batch_features
