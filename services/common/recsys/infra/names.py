"""The names `recsys infra` and `recsys services` act on, apart from the machinery behind them.

A module of constants, so that the command line can list them (``--help``) without importing
the servers' and services' code.
"""

from __future__ import annotations

__all__ = [
    "API_SERVICE_NAME",
    "FEATURES_GROUP",
    "SERVER_NAMES",
    "SERVICE_NAMES",
    "SERVING_SERVICE_NAMES",
    "STREAM_SERVICE_NAMES",
]

FEATURES_GROUP = "features"  # stands for the feature workers features-1 ... features-N
# Infrastructure first, then the platform's services that depend on it.
SERVER_NAMES = ("kafka", "cassandra", "redis", "prometheus")
# The stream services, then the gRPC serving services (which need the pipelines' models).
STREAM_SERVICE_NAMES = ("ingest", FEATURES_GROUP, "bronze")
SERVING_SERVICE_NAMES = ("featurestore", "candidates", "ranker", "experiments")
# The recommendation API last: it calls the serving services.
API_SERVICE_NAME = "api"
SERVICE_NAMES = (*STREAM_SERVICE_NAMES, *SERVING_SERVICE_NAMES, API_SERVICE_NAME)
