"""``recsys features show`` and ``trending`` against the real Redis and Cassandra."""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pytest
from typer.testing import CliRunner

from recsys.clients.cassandra import connect_cassandra
from recsys.clients.redis import redis_client
from recsys.config import Settings
from recsys.infra.cql_migrations import drop_keyspace
from recsys_features.cassandra_store import CassandraFeatureStore
from recsys_features.cli import features_app
from recsys_features.redis_store import RedisFeatureStore
from recsys_features.snapshot import FeatureSnapshot
from recsys_features.trending_store import TrendingStore
from tests.integration.features.conftest import make_keyspace

pytestmark = pytest.mark.integration

VALUES = {
    "current_genre_last_30min": "drama",
    "session_duration_sec": 600,
    "plays_abandoned_last_1hr": 2,
    "content_completion_rate_today": 0.5,
    "current_device_type": "tv",
    "search_terms_last_5min": ["cats"],
    "recently_watched_title_ids": ["tt_drama", "tt_doc"],
}


async def _seed(settings: Settings, keyspace: str, prefix: str, now_ms: int) -> None:
    redis = redis_client(settings.redis)
    cassandra = connect_cassandra(settings.cassandra)
    try:
        hot = FeatureSnapshot("hot", now_ms - 5_000, VALUES)
        await RedisFeatureStore(redis, prefix).write([hot], written_at_ms=now_ms)
        # Only in Cassandra (Redis lost it): served from there.
        cold = FeatureSnapshot("cold", now_ms - 60_000, VALUES)
        await CassandraFeatureStore(cassandra, keyspace).write([cold], written_at_ms=now_ms)
        # Only in Cassandra and written 10 min ago: the 5 min search feature is past its TTL.
        cold2 = FeatureSnapshot("cold2", now_ms - 600_000, VALUES)
        await CassandraFeatureStore(cassandra, keyspace).write(
            [cold2], written_at_ms=now_ms - 600_000
        )
        stale = FeatureSnapshot("hot2", now_ms - 600_000, VALUES)
        await RedisFeatureStore(redis, prefix).write([stale], written_at_ms=now_ms - 600_000)
    finally:
        await redis.aclose()
        cassandra.close()


async def _cleanup(settings: Settings, prefix: str) -> None:
    redis = redis_client(settings.redis)
    async for key in redis.scan_iter(match=f"{prefix}:*"):
        await redis.delete(key)
    await redis.aclose()


def test_show_reads_redis_then_cassandra_then_defaults(infra: Settings) -> None:
    unique = uuid.uuid4().hex[:10]
    keyspace, prefix = f"test_cli_{unique}", f"rec:v1:test:{unique}"
    make_keyspace(infra, keyspace).close()
    now_ms = time.time_ns() // 1_000_000
    asyncio.run(_seed(infra, keyspace, prefix, now_ms))
    env = {"RECSYS_REDIS__KEY_PREFIX": prefix, "RECSYS_CASSANDRA__KEYSPACE": keyspace}
    runner = CliRunner()
    try:

        def show(user: str) -> dict[str, dict[str, object]]:
            result = runner.invoke(features_app, ["show", user, "--json"], env=env)
            assert result.exit_code == 0, result.output
            doc = orjson.loads(result.output)
            assert doc["user_id"] == user
            return {f["name"]: f for f in doc["features"]}

        hot = show("hot")
        assert {n: f["value"] for n, f in hot.items()} == VALUES
        assert {f["source"] for f in hot.values()} == {"redis"}
        assert all(4.0 <= f["age_s"] < 600 for f in hot.values())  # type: ignore[operator]

        cold = show("cold")
        assert {n: f["value"] for n, f in cold.items()} == VALUES
        assert {f["source"] for f in cold.values()} == {"cassandra"}

        # Written 10 min ago: the 5 min search feature is past its TTL, the rest is not.
        hot2 = show("hot2")
        assert hot2["search_terms_last_5min"]["source"] == "default"
        assert hot2["search_terms_last_5min"]["value"] == []
        assert hot2["session_duration_sec"]["source"] == "redis"

        cold2 = show("cold2")
        assert cold2["search_terms_last_5min"]["source"] == "default"
        assert cold2["session_duration_sec"]["source"] == "cassandra"

        nobody = show("nobody")
        assert {f["source"] for f in nobody.values()} == {"default"}
        assert nobody["content_completion_rate_today"]["value"] == 0.0

        table = runner.invoke(features_app, ["show", "hot"], env=env)
        assert table.exit_code == 0
        assert "current_genre_last_30min" in table.output
        assert '"drama"' in table.output
    finally:
        asyncio.run(_cleanup(infra, prefix))
        client = connect_cassandra(infra.cassandra)
        drop_keyspace(client, keyspace)
        client.close()


async def _seed_trending(settings: Settings, prefix: str) -> None:
    redis = redis_client(settings.redis)
    try:
        store = TrendingStore(redis, prefix, partitions=settings.features.partitions)
        # Two partitions' shares of the same country add up; another country stays apart.
        await store.write(0, {("trending_titles_1h", "US"): {"tt_a": 2, "tt_b": 1}})
        await store.write(3, {("trending_titles_1h", "US"): {"tt_b": 3, "tt_c": 2}})
        await store.write(1, {("trending_titles_1h", "GB"): {"tt_z": 9}})
    finally:
        await redis.aclose()


def test_trending_adds_up_the_partitions_of_a_country(infra: Settings) -> None:
    prefix = f"rec:v1:test:{uuid.uuid4().hex[:10]}"
    asyncio.run(_seed_trending(infra, prefix))
    env = {"RECSYS_REDIS__KEY_PREFIX": prefix}
    runner = CliRunner()
    try:
        result = runner.invoke(features_app, ["trending", "us", "--json"], env=env)
        assert result.exit_code == 0, result.output
        doc = orjson.loads(result.output)
        assert doc["country"] == "US"
        # tt_b 1 + 3; tt_a and tt_c tie at 2 and are ordered by title id.
        assert [(t["title_id"], t["members"]) for t in doc["titles"]] == [
            ("tt_b", 4),
            ("tt_a", 2),
            ("tt_c", 2),
        ]
        table = runner.invoke(features_app, ["trending", "US", "--limit", "1"], env=env)
        assert table.exit_code == 0
        assert "tt_b" in table.output
        assert "tt_a" not in table.output
        empty = runner.invoke(features_app, ["trending", "FR", "--window", "24h"], env=env)
        assert empty.exit_code == 0
        assert "no plays in FR" in empty.output
        bad = runner.invoke(features_app, ["trending", "USA"], env=env)
        assert bad.exit_code == 2
        assert "not a two-letter country code" in bad.output
    finally:
        asyncio.run(_cleanup(infra, prefix))
