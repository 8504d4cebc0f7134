"""Members' batch features reach the models only when the daily snapshots cover the training
data: otherwise most rows would train on defaults and serving would feed real values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from recsys.lake import load_catalog
from recsys.models import ModelRegistry
from recsys.models.vectorize import FeatureSpec
from recsys_pipelines.contracts import FEATURES_USER_DAILY
from recsys_pipelines.features_daily import compute_features
from recsys_pipelines.learning import train_and_register
from recsys_pipelines.learning.lakedata import load_lake_data
from recsys_pipelines.tables import open_table, replace_partitions
from tests.integration.learning.test_small_world import TINY
from tests.integration.learning.world import small_world_lake

pytestmark = pytest.mark.integration


def test_coverage_counts_the_interactions_whose_day_before_has_a_snapshot(
    tmp_path: Path,
) -> None:
    world = small_world_lake(tmp_path, titles=80, members=60, days=3, sessions_per_day=60)
    settings = world.settings
    catalog = load_catalog(settings.lake)
    data = load_lake_data(catalog, settings.lake, settings.pipelines, world.last_day)
    times = data.interactions.time_us
    assert data.context.coverage(times) == 0.0  # no snapshot table at all

    registry = ModelRegistry(settings.models.root)
    train_and_register(settings, registry, config=TINY)
    for name in ("two_tower", "ranker"):
        current = registry.current(name)
        assert current is not None
        assert not FeatureSpec.from_json(
            current.file("feature_spec.json").read_bytes()
        ).batch_features

    # The snapshot of the first day serves the interactions of the second.
    first = world.first_day
    users, _ = compute_features(catalog, settings.lake, settings.pipelines, first)
    replace_partitions(
        open_table(catalog, settings.lake, FEATURES_USER_DAILY),
        FEATURES_USER_DAILY,
        users,
        [first],
        {},
    )
    days = [datetime.fromtimestamp(t / 1e6, UTC).date() for t in times.tolist()]
    expected = sum(d == first + timedelta(days=1) for d in days) / len(days)
    assert 0.0 < expected < 1.0
    assert data.context.coverage(times) == pytest.approx(expected)
    assert data.context.coverage(np.zeros(0, np.int64)) == 0.0
