"""Faust internals the feature worker relies on, pinned so an upgrade that moves them fails here
with a clear message rather than as a slow or stuck worker (STYLE.md: pin private overrides)."""

from __future__ import annotations

from typing import Any

from recsys_features.app import create_app
from recsys_features.batch_consumer import BatchingConsumer
from recsys_features.job import FeatureJob
from tests.features_support import make_job


def _app(**features: Any) -> Any:
    job: FeatureJob = make_job(**features)
    return create_app(job.settings, job)


async def test_the_worker_consumer_gets_the_configured_fetch_wait() -> None:
    app = _app(fetch_max_wait_ms=77)
    consumer = app.consumer
    assert isinstance(consumer, BatchingConsumer)
    # Faust builds the aiokafka consumer in its consumer thread with fetch_max_wait_ms=1500;
    # ours overrides the attribute the fetcher is built from at start().
    kafka_consumer = consumer._thread._create_worker_consumer(app.transport)
    assert kafka_consumer._fetch_max_wait_ms == 77


async def test_recovery_exposes_what_the_bulk_changelog_path_writes_to() -> None:
    app = _app()
    recovery = app.tables.recovery
    for name in ("in_recovery", "active_tps", "tp_to_table", "active_offsets"):
        assert hasattr(recovery, name), f"faust's Recovery has no {name} any more"
    table = app.tables["member_state"]
    store = table.data
    # The in-memory store: a dict of values and the partition of every recovered key.
    assert isinstance(store.data, dict)
    assert isinstance(store._key_partition, dict)
