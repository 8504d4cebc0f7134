"""Prometheus metrics of the ingest service, in a registry of their own (one per app).

    metrics = IngestMetrics()              # or IngestMetrics(registry) to share one
    metrics.events_accepted.labels(event_type="play").inc(3)
    metrics.render()                       # the /metrics payload

A registry per app (not the process-global one) lets tests build many apps in one process.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from recsys.metrics import STAGE_LATENCY_BUCKETS, latency_histogram

__all__ = ["IngestMetrics"]

BATCH_SIZE_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_accepted = Counter(
            "recsys_ingest_events_accepted_total",
            "Events Kafka acknowledged, by type.",
            ["event_type"],
            registry=r,
        )
        self.events_rejected = Counter(
            "recsys_ingest_events_rejected_total",
            "Events refused by validation, by type (or unknown) and the first problem's kind.",
            ["event_type", "reason"],
            registry=r,
        )
        self.events_unavailable = Counter(
            "recsys_ingest_events_unavailable_total",
            "Valid events answered with 503 because Kafka did not acknowledge them, by reason.",
            ["reason"],
            registry=r,
        )
        self.requests = Counter(
            "recsys_ingest_requests_total",
            "Answered requests to POST /v1/events, by status code.",
            ["status"],
            registry=r,
        )
        self.request_latency = latency_histogram(
            "recsys_ingest_request_seconds",
            "Time to answer POST /v1/events (body read to response), by status code.",
            ["status"],
            registry=r,
        )
        self.produce_latency = latency_histogram(
            "recsys_ingest_produce_seconds",
            "Time from producing a request's records to Kafka acknowledging all of them.",
            buckets=STAGE_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "recsys_ingest_batch_events",
            "Events per request (well-formed requests).",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.kafka_ready = Gauge(
            "recsys_ingest_kafka_ready",
            "1 when the producer is connected and the broker answered its last health probe.",
            registry=r,
        )
        self.requests_in_flight = Gauge(
            "recsys_ingest_requests_in_flight",
            "POST /v1/events requests being handled (body read, validation, Kafka wait).",
            registry=r,
        )
        self.requests_awaiting_kafka = Gauge(
            "recsys_ingest_requests_awaiting_kafka",
            "Requests whose events are queued for Kafka, waiting for its acknowledgement.",
            registry=r,
        )
        self.requests_shed = Counter(
            "recsys_ingest_requests_shed_total",
            "POST /v1/events requests answered 503 at once because max_requests_in_flight "
            "were in flight (also counted in recsys_ingest_requests_total).",
            registry=r,
        )
        self.waiting_batches = Gauge(
            "recsys_ingest_waiting_batches",
            "Record batches waiting for the producer in the fullest partition (sealed, filling "
            "or being offered); requests for a partition at max_waiting_batches get 503.",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
