"""The daily run on a scripted lake: features in the real Cassandra (with registry TTLs) and in
the lake's snapshot tables, the same values in both."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from recsys.clients.cassandra import CassandraClient
from recsys.config import CassandraSettings, Settings
from recsys.features import FEATURES
from recsys.features.title_table import TITLE_FEATURES_MODEL, TitleFeatureTable
from recsys.models import ModelRegistry
from recsys_pipelines.contracts import FEATURES_TITLE_DAILY, FEATURES_USER_DAILY
from recsys_pipelines.daily import DailyContext, backfill, run_daily
from recsys_pipelines.errors import PipelineError
from recsys_pipelines.feature_store import BATCH_ROW, STATIC_ROW, feature_event_time
from recsys_pipelines.tables import read_table
from tests.unit.pipelines.scenario import D, catalog, day_d_events
from tests.unit.pipelines.scripted import ScriptedLake

pytestmark = pytest.mark.integration


@pytest.fixture
def ctx(
    infra: Settings,
    tmp_path: Path,
    keyspace_settings: CassandraSettings,
    cassandra_client: CassandraClient,
) -> DailyContext:
    lake = ScriptedLake.create(tmp_path)
    catalog(lake)
    lake.events(*day_d_events())
    settings = infra.model_copy(update={"lake": lake.lake, "cassandra": keyspace_settings})
    registry = ModelRegistry(tmp_path / "models")
    return DailyContext(settings, lake.settings, lake.catalog, cassandra_client, registry)


def _stored(ctx: DailyContext, entity: str, entity_id: str) -> dict[str, dict[str, Any]]:
    assert ctx.cassandra is not None
    rows = ctx.cassandra.session.execute(
        f"SELECT name, value, event_time, TTL(value) AS ttl "
        f"FROM {ctx.settings.cassandra.keyspace}.online_features "
        "WHERE entity = %s AND entity_id = %s",
        (entity, entity_id),
    )
    return {r["name"]: r for r in rows}


def test_daily_features_reach_cassandra_and_the_snapshot_table(ctx: DailyContext) -> None:
    report = run_daily(ctx, D)
    assert report.counts["users"] == 3
    assert set(report.seconds) == {
        "silver",
        "gold",
        "features",
        "snapshot",
        "cassandra",
        "title table",
    }
    snapshot = {
        r["user_id"]: r
        for r in read_table(ctx.catalog, ctx.settings.lake, FEATURES_USER_DAILY, D, D).to_pylist()
    }
    stored = _stored(ctx, "user", "u1")
    assert set(stored) == {BATCH_ROW, STATIC_ROW}
    values = {
        **orjson.loads(stored[BATCH_ROW]["value"]),
        **orjson.loads(stored[STATIC_ROW]["value"]),
    }
    assert set(values) == set(FEATURES_USER_DAILY.columns[2:])
    for name, value in values.items():
        assert value == snapshot["u1"][name], name
    for row_name, row in stored.items():
        assert row["event_time"] == feature_event_time(D).replace(tzinfo=None)
        for name in orjson.loads(row["value"]):
            ttl = FEATURES[name].ttl  # each row holds one TTL class of the registry
            if ttl is None:
                assert row_name == STATIC_ROW
                assert row["ttl"] is None, name  # static attributes never expire
            else:
                assert row_name == BATCH_ROW
                assert ttl.total_seconds() - 120 < row["ttl"] <= ttl.total_seconds(), name
    title = _stored(ctx, "title", "t1")
    assert orjson.loads(title[STATIC_ROW]["value"])["available_countries"] == ["GB", "US"]
    # The serving copy of the title features: the same values, published as current.
    assert ctx.registry is not None
    published = ctx.registry.current(TITLE_FEATURES_MODEL)
    assert published is not None
    table = TitleFeatureTable.load(published)
    stored_title = {
        **orjson.loads(title[STATIC_ROW]["value"]),
        **orjson.loads(title[BATCH_ROW]["value"]),
    }
    at = int(table.rows(["t1"])[0])
    assert at >= 0
    for name, value in stored_title.items():
        served = table.columns[name][at]
        assert (served.item() if hasattr(served, "item") else served) == value, name
    assert table.event_time_ms == int(feature_event_time(D).timestamp() * 1000)
    assert orjson.loads(title[BATCH_ROW]["value"])["title_completion_rate_90d"] == 0.5
    titles = read_table(ctx.catalog, ctx.settings.lake, FEATURES_TITLE_DAILY, D, D)
    assert titles.num_rows == 5


def test_a_second_daily_run_of_a_day_replaces_its_snapshot(ctx: DailyContext) -> None:
    run_daily(ctx, D)
    first = read_table(ctx.catalog, ctx.settings.lake, FEATURES_USER_DAILY, D, D)
    run_daily(ctx, D)
    again = read_table(ctx.catalog, ctx.settings.lake, FEATURES_USER_DAILY, D, D)
    assert again.sort_by("user_id").equals(first.sort_by("user_id"))


def test_an_empty_day_is_a_one_line_error(ctx: DailyContext) -> None:
    with pytest.raises(PipelineError, match=r"^no events on 2026-11-10 in the lake"):
        run_daily(ctx, D - timedelta(days=10))


def test_backfill_writes_a_snapshot_per_day_and_no_old_day_to_cassandra(
    ctx: DailyContext,
) -> None:
    lines: list[str] = []
    reports = backfill(ctx, D - timedelta(days=1), D + timedelta(days=1), progress=lines.append)
    assert [r.day for r in reports] == [D - timedelta(days=1), D, D + timedelta(days=1)]
    assert [r.counts["users"] for r in reports] == [0, 3, 3]
    assert any(line.startswith("[3/3] 2026-11-21: 3 members") for line in lines)
    assert "cassandra" not in reports[-1].seconds  # 2026-11-21 is not yesterday
    assert _stored(ctx, "user", "u1") == {}
    snapshot = read_table(ctx.catalog, ctx.settings.lake, FEATURES_USER_DAILY)
    assert sorted(set(snapshot.column("feature_date").to_pylist())) == [
        D,
        D + timedelta(days=1),
    ]
