"""The experiments service's own Prometheus metrics (besides recsys.serving's)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = ["ASSIGNMENTS", "CONFIG_RELOADS", "CONFIG_VERSION", "EXPOSURES", "FIRST_EXPOSURES"]

CONFIG_VERSION = Gauge(
    "recsys_experiments_config_version",
    "1 for the configuration version being served.",
    ["version"],
)
CONFIG_RELOADS = Counter(
    "recsys_experiments_config_reloads",
    "Configuration files loaded (result=ok) or refused (result=error) while running.",
    ["result"],
)
# Labelled by experiment and variant, which come from the configuration: a bounded set.
ASSIGNMENTS = Counter(
    "recsys_experiments_assignments",
    "Exposures per experiment and variant (what the dashboards compare with the configured split).",
    ["experiment", "variant"],
)
EXPOSURES = Counter(
    "recsys_experiments_exposures",
    "Exposures (member x experiment per call): sent to Kafka, dropped (queue full), or failed "
    "(Kafka refused them).",
    ["result"],
)
FIRST_EXPOSURES = Counter(
    "recsys_experiments_first_exposures",
    "First exposures written to Cassandra (result=written), found already there (existing), or "
    "not written (failed).",
    ["result"],
)
