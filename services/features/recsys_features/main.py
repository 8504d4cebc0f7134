"""``recsys-features``: run one worker of the feature stream job.

Start as many as there are partitions to share; they form one consumer group (docs/features.md).
Everything is built here from :class:`recsys.config.Settings`, nothing at import time.
"""

from __future__ import annotations

import asyncio
import gc

import faust
import uvloop

from recsys.clients.redis import redis_client
from recsys.config import Settings
from recsys.log import configure, get_logger
from recsys.metrics import serve_metrics
from recsys_features.app import create_app, data_dir
from recsys_features.cassandra_store import CassandraFeatureStore
from recsys_features.catalog import CassandraCatalog
from recsys_features.job import FeatureJob
from recsys_features.metrics import FeatureMetrics
from recsys_features.redis_store import RedisFeatureStore
from recsys_features.startup import wait_for_dependencies
from recsys_features.trending_store import TrendingStore

__all__ = ["main"]


def main() -> None:
    # Before the app exists, so Faust and mode pick it up: Faust's per-record path creates
    # tasks and futures for every record, which uvloop makes about a quarter cheaper here.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    settings = Settings()
    configure(settings.log, service="features")
    log = get_logger(__name__)
    metrics = FeatureMetrics.create()  # served while the worker waits: ready stays 0
    serve_metrics(settings.metrics.port)
    cassandra = wait_for_dependencies(settings)
    catalog = CassandraCatalog(cassandra, settings.cassandra.keyspace)
    catalog.load()
    redis = redis_client(settings.redis, timeout_s=settings.features.redis_timeout_s)
    job = FeatureJob(
        settings,
        catalog=catalog,
        redis_store=RedisFeatureStore(redis, settings.redis.key_prefix),
        cassandra_store=CassandraFeatureStore(cassandra, settings.cassandra.keyspace),
        trending_store=TrendingStore(
            redis, settings.redis.key_prefix, partitions=settings.features.partitions
        ),
        metrics=metrics,
    )
    app = create_app(settings, job)
    data_dir(settings).mkdir(parents=True, exist_ok=True)
    log.info(
        "features_worker_starting",
        app_id=settings.features.app_id,
        topic=settings.features.events_topic,
        metrics_port=settings.metrics.port,
    )
    worker = faust.Worker(
        app, loglevel=settings.log.level.lower(), override_logging=False, quiet=True
    )
    tune_gc()
    try:
        worker.execute_from_commandline()
    finally:
        cassandra.close()


def tune_gc() -> None:
    """Collect the oldest generation less often, and never look at startup objects again.

    A batch's objects live as long as the batch (up to a second), so many survive two young
    collections and count towards a full one; with Python's defaults a worker at 4,000 events/s
    spent about a fifth of its CPU (0.25 s per full collection) walking the cached member states
    and pending store writes. Cyclic garbage is rare here (reference counting frees the rest).
    """
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 100)


GC_YOUNG_THRESHOLD = 5_000  # allocations between young collections (Python's default: 700)


if __name__ == "__main__":
    main()
