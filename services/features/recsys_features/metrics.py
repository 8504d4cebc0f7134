"""Prometheus metrics of the feature stream job (served on ``settings.metrics.port``).

Freshness is store write time minus the event time of the member's latest event, observed per
member per store write. Lag is the consumer's distance to the partition's end, sampled on a timer.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from recsys.metrics import STAGE_LATENCY_BUCKETS, latency_histogram

__all__ = ["FRESHNESS_BUCKETS", "FeatureMetrics"]

# Seconds; the objective is p99 <= 1 s at 1,000 events/s.
FRESHNESS_BUCKETS: tuple[float, ...] = (
    0.05,
    0.1,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


@dataclass(frozen=True, slots=True)
class FeatureMetrics:
    events: Counter
    duplicates: Counter
    late: Counter
    sessions: Counter
    freshness: Histogram
    store_write: Histogram
    lag: Gauge
    batch_events: Histogram
    ready: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = REGISTRY) -> FeatureMetrics:
        return cls(
            events=Counter(
                "recsys_features_events_total",
                "Events consumed, by outcome (applied, duplicate, late, invalid).",
                ["outcome"],
                registry=registry,
            ),
            duplicates=Counter(
                "recsys_features_duplicates_total",
                "Events dropped because their event_id was seen within the dedup window.",
                registry=registry,
            ),
            late=Counter(
                "recsys_features_late_events_total",
                "Events beyond the grace period, sent to the late-events topic.",
                registry=registry,
            ),
            sessions=Counter(
                "recsys_features_sessions_closed_total",
                "Session summaries emitted.",
                registry=registry,
            ),
            freshness=Histogram(
                "recsys_features_freshness_seconds",
                "Store write time minus the event time of the member's latest event.",
                ["store"],
                buckets=FRESHNESS_BUCKETS,
                registry=registry,
            ),
            store_write=latency_histogram(
                "recsys_features_store_write_seconds",
                "Duration of one batched store write (Redis pipeline, Cassandra batches).",
                ["store"],
                buckets=STAGE_LATENCY_BUCKETS,
                registry=registry,
            ),
            lag=Gauge(
                "recsys_features_consumer_lag",
                "Records between the committed position and the end of each partition.",
                ["topic", "partition"],
                registry=registry,
            ),
            batch_events=Histogram(
                "recsys_features_batch_events",
                "Records folded per batch (bigger batches amortise the per-batch writes).",
                buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
                registry=registry,
            ),
            ready=Gauge(
                "recsys_features_ready",
                "1 once the worker has joined its consumer group and recovered its partitions.",
                registry=registry,
            ),
        )
