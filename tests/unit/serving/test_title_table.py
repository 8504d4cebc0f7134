"""The title feature table: published by the pipelines, loaded by the serving services, answered
column by column, and the availability masks candidates filters with."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pytest

from recsys.features.online import feature_event_time
from recsys.features.title_table import (
    TITLE_FEATURES_MODEL,
    TitleFeatureTable,
    publish_title_features,
)
from recsys.models import ModelRegistry
from recsys.models.inference import TitleIndex
from recsys_candidates.availability import Availability, CountryRows
from recsys_featurestore.title_features import TitleColumns

DAY = date(2026, 11, 28)


def _arrow() -> pa.Table:
    return pa.table(
        {
            "title_id": ["t1", "t2", "t3"],
            "title_genres": [["drama", "crime"], ["comedy"], []],
            "release_age_days": [10, -1, 400],
            "title_popularity_30d": [0.5, 0.25, 0.25],
            "title_completion_rate_90d": [0.9, 0.1, None],
            "available_countries": [["GB", "US"], ["US"], ["FR"]],
        }
    )


@pytest.fixture
def table(tmp_path: Path) -> TitleFeatureTable:
    registry = ModelRegistry(tmp_path)
    version = publish_title_features(registry, _arrow(), DAY)
    current = registry.current(TITLE_FEATURES_MODEL)
    assert current is not None
    assert current.version == version
    return TitleFeatureTable.load(current)


def test_a_published_table_loads_with_its_values_and_event_time(table: TitleFeatureTable) -> None:
    assert table.title_ids == ("t1", "t2", "t3")
    assert table.event_time_ms == int(feature_event_time(DAY).timestamp() * 1000)
    assert table.columns["title_genres"][0] == ["drama", "crime"]
    assert table.columns["release_age_days"].tolist() == [10, -1, 400]  # type: ignore[union-attr]
    # a missing value is the registry default
    assert table.columns["title_completion_rate_90d"][2] == 0.0
    assert table.rows(["t3", "nope", "t1"]).tolist() == [2, -1, 0]


def test_display_names_travel_with_the_table_and_default_to_the_id(
    table: TitleFeatureTable, tmp_path: Path
) -> None:
    assert table.names == ()
    assert table.name(0) == "t1"  # a version published without names
    registry = ModelRegistry(tmp_path / "named")
    publish_title_features(registry, _arrow(), DAY, {"t1": "Heat", "t3": ""})
    current = registry.current(TITLE_FEATURES_MODEL)
    assert current is not None
    named = TitleFeatureTable.load(current)
    assert [named.name(i) for i in range(3)] == ["Heat", "t2", "t3"]


def test_a_table_without_a_feature_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lacks columns"):
        publish_title_features(ModelRegistry(tmp_path), _arrow().drop(["title_genres"]), DAY)
    assert ModelRegistry(tmp_path).current_token(TITLE_FEATURES_MODEL) is None


def test_columns_align_with_the_ids_and_flag_unknown_titles(table: TitleFeatureTable) -> None:
    columns, rows = TitleColumns.of(table).columns(
        ["t2", "unknown", "t1"], ["release_age_days", "title_genres", "title_popularity_30d"]
    )
    assert rows.tolist() == [1, -1, 0]
    age, genres, popularity = columns
    assert list(age.int64_values.values) == [-1, -1, 10]
    assert list(age.is_default) == [False, True, False]
    assert list(genres.string_list_values.lengths) == [1, 0, 2]
    assert list(genres.string_list_values.values) == ["comedy", "drama", "crime"]
    assert list(genres.is_default) == [False, True, False]
    assert list(popularity.float64_values.values) == [0.25, 0.0, 0.5]


def test_availability_masks_follow_the_index_rows(table: TitleFeatureTable) -> None:
    # The index knows a title the table does not (t9): it is shown nowhere.
    index = TitleIndex.build(np.eye(4, dtype=np.float32), ["t3", "t1", "t9", "t2"])
    availability = Availability(index, CountryRows(table))
    assert availability.allowed("US").tolist() == [False, True, False, True]
    assert availability.allowed("FR").tolist() == [True, False, False, False]
    assert availability.allowed("JP").tolist() == [False] * 4
    mask = availability.allowed("US")
    mask[:] = False  # a caller's changes do not leak into the next call
    assert availability.allowed("US").tolist() == [False, True, False, True]


def test_search_allowed_fills_k_from_the_allowed_rows_only() -> None:
    vectors = np.eye(6, dtype=np.float32)
    index = TitleIndex.build(vectors, [f"t{i}" for i in range(6)])
    query = np.asarray([6, 5, 4, 3, 2, 1], np.float32)
    allowed = np.asarray([False, True, False, True, True, True])
    found = index.search_allowed(query, 3, allowed)
    assert [t for t, _ in found] == ["t1", "t3", "t4"]
    assert [s for _, s in found] == [5.0, 3.0, 2.0]
    # fewer allowed rows than k: all of them, no padding
    assert len(index.search_allowed(query, 10, allowed)) == 4
