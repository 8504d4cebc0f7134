"""Client factories for Kafka, Redis and Cassandra, built from :mod:`recsys.config` settings.

Factories return configured but unstarted clients: the caller owns their lifecycle (start them in
``main()`` or a lifespan, close them on shutdown) so tests can swap them.

The names below are loaded on first use: importing ``recsys.clients.redis`` must not also load
cassandra-driver and aiokafka (the `recsys` command line reads Redis in under a second).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recsys.clients.cassandra import CassandraClient, connect_cassandra
    from recsys.clients.kafka import kafka_admin, kafka_consumer, kafka_producer
    from recsys.clients.redis import redis_client

__all__ = [
    "CassandraClient",
    "connect_cassandra",
    "kafka_admin",
    "kafka_consumer",
    "kafka_producer",
    "redis_client",
]

_HOMES = {
    "CassandraClient": "cassandra",
    "connect_cassandra": "cassandra",
    "kafka_admin": "kafka",
    "kafka_consumer": "kafka",
    "kafka_producer": "kafka",
    "redis_client": "redis",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
