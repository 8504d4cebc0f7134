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
    work_seconds: Histogram
    ready: Gauge
    dead_letters: Counter
    store_errors: Counter
    paused: Gauge
    members: Gauge
    trending_members: Gauge
    evicted: Counter
    healed: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = REGISTRY) -> FeatureMetrics:
        return cls(
            events=Counter(
                "recsys_features_events_total",
                "Events consumed, by outcome (applied, duplicate, late, invalid, future, failed).",
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
            work_seconds=Histogram(
                "recsys_features_work_seconds",
                "Time the job's lock was held, by task: a batch (fold, produce, commit) or the "
                "housekeeping timer (idle sessions, evictions); batches wait while either runs.",
                ["task"],
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
                registry=registry,
            ),
            ready=Gauge(
                "recsys_features_ready",
                "1 once the worker has joined its consumer group and recovered its partitions.",
                registry=registry,
            ),
            dead_letters=Counter(
                "recsys_features_dead_letters_total",
                "Records sent to the dead-letter topic, by kind of reason (invalid, future, "
                "failed, unreadable_state).",
                ["reason"],
                registry=registry,
            ),
            store_errors=Counter(
                "recsys_features_store_errors_total",
                "Failed store writes (their members stay pending and are retried with backoff).",
                ["store"],
                registry=registry,
            ),
            paused=Gauge(
                "recsys_features_paused",
                "1 while the worker takes no new batches because a store's backlog is full.",
                registry=registry,
            ),
            members=Gauge(
                "recsys_features_members",
                "Member states held by this worker (evicted after the member TTL in event time).",
                registry=registry,
            ),
            trending_members=Gauge(
                "recsys_features_trending_members",
                "Members whose plays the trending counts hold (those who played inside the "
                "longest trending window of their partition's event time).",
                registry=registry,
            ),
            evicted=Counter(
                "recsys_features_members_evicted_total",
                "Member states dropped after the member TTL without events (event time).",
                registry=registry,
            ),
            healed=Counter(
                "recsys_features_states_healed_total",
                "Member states that held events from beyond the clock-skew bound, repaired.",
                registry=registry,
            ),
        )
