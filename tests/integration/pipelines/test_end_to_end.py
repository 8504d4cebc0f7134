"""Events -> Kafka -> bronze (the real writer) -> silver -> gold -> daily features in the real
Cassandra and the snapshot table -> a point-in-time training set, on the scripted days."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from recsys.clients.cassandra import CassandraClient
from recsys.config import CassandraSettings, Settings
from recsys.lake import table_identifier
from recsys_bronze import BronzeSettings, BronzeWriter
from recsys_pipelines.contracts import FEATURES_USER_DAILY, GOLD_TOP_TITLES_7D
from recsys_pipelines.daily import DailyContext, backfill, run_daily
from recsys_pipelines.tables import read_table
from recsys_pipelines.training import build_training_set
from tests.features_support import create_topics, delete_topics, produce_bronze_rows
from tests.unit.pipelines.scenario import D, catalog, day_d1_events, day_d_events
from tests.unit.pipelines.scripted import ScriptedLake

pytestmark = pytest.mark.integration

GUARD_S = 120


async def _bronze_rows(settings: Settings, bronze: BronzeSettings, expected: int) -> None:
    writer = BronzeWriter(settings, bronze)
    task = asyncio.create_task(writer.run())
    table_id = table_identifier(settings.lake, bronze.table)
    from recsys.lake import load_catalog

    try:
        async with asyncio.timeout(GUARD_S):
            while True:
                catalog = load_catalog(settings.lake)
                if catalog.table_exists(table_id):
                    snap = catalog.load_table(table_id).current_snapshot()
                    total = (
                        int(snap.summary.get("total-records") or 0) if snap and snap.summary else 0
                    )
                    if total >= expected:
                        return
                await asyncio.sleep(0.2)
    finally:
        writer.stop()
        async with asyncio.timeout(GUARD_S):
            await asyncio.gather(task, return_exceptions=True)


async def test_events_to_training_set(
    infra: Settings,
    unique: str,
    tmp_path: Path,
    keyspace_settings: CassandraSettings,
    cassandra_client: CassandraClient,
) -> None:
    lake = ScriptedLake.create(tmp_path)
    catalog(lake)
    settings = infra.model_copy(update={"lake": lake.lake, "cassandra": keyspace_settings})
    topic = f"test.pipelines.{unique}"
    await create_topics(settings, [topic], 3)
    try:
        sent = await produce_bronze_rows(settings, topic, [*day_d_events(), *day_d1_events()])
        bronze = BronzeSettings(
            topic=topic, group_id=f"test-pipelines-{unique}", commit_interval_s=0.5
        )
        # The resent complete event is dropped by the writer's dedup: one row fewer.
        await _bronze_rows(settings, bronze, sent - 1)
    finally:
        await delete_topics(settings, topic)

    ctx = DailyContext(settings, lake.settings, lake.catalog, cassandra_client)
    report = run_daily(ctx, D)
    assert report.counts["sessions"] == 6
    assert report.counts["users"] == 3

    top = read_table(lake.catalog, lake.lake, GOLD_TOP_TITLES_7D, D, D).to_pylist()
    us = sorted(
        (r["rank"], r["title_id"], round(r["hours_viewed"], 4)) for r in top if r["country"] == "US"
    )
    assert us == [(1, "t1", 1.3), (2, "t4", 0.6667), (3, "t2", 0.1667)]

    snapshot = {
        r["user_id"]: r
        for r in read_table(lake.catalog, lake.lake, FEATURES_USER_DAILY, D, D).to_pylist()
    }
    stored = cassandra_client.session.execute(
        f"SELECT name, value FROM {keyspace_settings.keyspace}.online_features "
        "WHERE entity = 'user' AND entity_id = 'u1'"
    )
    values = {k: v for r in stored for k, v in orjson.loads(r["value"]).items()}
    assert values["watch_hours_30d"] == snapshot["u1"]["watch_hours_30d"]
    assert round(values["watch_hours_30d"], 4) == 1.3
    assert values["top_directors_30d"] == ["Ann", "Bo"]

    backfill(ctx, D - timedelta(days=1), D - timedelta(days=1))
    rows, training = build_training_set(lake.catalog, lake.lake, lake.settings, D, D)
    shown = [r for r in rows.to_pylist() if r["source"] == "impression"]
    assert [(r["title_id"], r["played"], r["completed"], r["rated_high"]) for r in shown] == [
        ("t1", True, True, True),
        ("t2", True, False, False),
        ("t3", False, False, False),
    ]
    assert shown[0]["search_terms_last_5min"] == ["drama"]
    assert training.by_source["playback"] == 4  # u2: t5, t2; u3: t4, t1
