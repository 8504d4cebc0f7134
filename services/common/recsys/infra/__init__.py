"""Local infrastructure for development and tests: Kafka, Cassandra and Redis on loopback."""
