"""Prometheus metrics of the bronze writer (module-level: one set per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from recsys.metrics import latency_histogram

__all__ = [
    "COMMIT_LATENCY",
    "COMMIT_SIZE",
    "DEDUP_EVICTED_EARLY",
    "DEDUP_IDS",
    "DUPLICATES",
    "LAG",
    "LAST_COMMIT",
    "READY",
    "RECORDS_REDELIVERED",
    "RECORDS_REPLAYED",
    "REJECTS",
    "ROWS_COMMITTED",
]

ROWS_COMMITTED = Counter(
    "recsys_bronze_rows_committed_total",
    "Rows appended to a bronze table by committed Iceberg snapshots.",
    ["table"],
)
REJECTS = Counter(
    "recsys_bronze_rejects_total",
    "Records that are not a usable Event, dead-lettered to the rejects table.",
    ["topic"],
)
RECORDS_REPLAYED = Counter(
    "recsys_bronze_records_replayed_total",
    "Records read again after a restart or rebalance and dropped because the table held them.",
    ["table"],
)
DUPLICATES = Counter(
    "recsys_bronze_duplicates_total",
    "Records dropped because their event_id was read from the same partition within the dedup "
    "window (a client's resend).",
    ["topic"],
)
DEDUP_IDS = Gauge(
    "recsys_bronze_dedup_ids",
    "event_ids remembered for dedup, over all owned partitions.",
)
DEDUP_EVICTED_EARLY = Counter(
    "recsys_bronze_dedup_evicted_early_total",
    "event_ids forgotten because a partition reached dedup_max_ids before they left the window: "
    "a resend of one of them would become a second row.",
)
RECORDS_REDELIVERED = Counter(
    "recsys_bronze_records_redelivered_total",
    "Records the consumer handed out a second time, or before the writer sought their "
    "partition on assignment, dropped before they reach a batch (they are read again).",
    ["topic"],
)
# An Iceberg commit writes Parquet, manifests and metadata: tens of ms to seconds, not the API's ms.
COMMIT_LATENCY = latency_histogram(
    "recsys_bronze_commit_seconds",
    "Wall time of one micro-commit (Iceberg appends, then the Kafka offset commit).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
COMMIT_SIZE = Histogram(
    "recsys_bronze_commit_records",
    "Kafka records (events and rejects) per micro-commit.",
    buckets=(1, 10, 100, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000),
)
LAG = Gauge(
    "recsys_bronze_lag_records",
    "Records in the partition not yet in the table (last stable offset - table offset).",
    ["topic", "partition"],
)
LAST_COMMIT = Gauge(
    "recsys_bronze_last_commit_timestamp_seconds",
    "Unix time of the last successful micro-commit.",
)
READY = Gauge(
    "recsys_bronze_ready",
    "1 once the writer has joined its consumer group and sought its partitions to the table's "
    "offsets (the readiness `recsys services up` probes); 0 again once it stops.",
)
