"""Client factories for Kafka, Redis and Cassandra, built from :mod:`recsys.config` settings.

Factories return configured but unstarted clients: the caller owns their lifecycle (start them in
``main()`` or a lifespan, close them on shutdown) so tests can swap them.
"""

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
