"""The API's Prometheus metrics, in the process registry (with the hot-reload metrics of
recsys.serving), rendered by ``GET /metrics``.

Request latency uses the shared buckets, dense around the 100 ms objective, so a burn-rate alert
can ask exactly what share of answers took longer than 0.1 s.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from recsys.metrics import STAGE_LATENCY_BUCKETS, latency_histogram
from recsys_api.ladder import Reason

__all__ = [
    "ANSWERED_BY_LEVEL",
    "BREAKER_STATE",
    "DEGRADATIONS",
    "DEGRADATIONS_BY_REASON",
    "IN_FLIGHT",
    "LAST_LISTS",
    "LATENCY_BY_LEVEL",
    "LATENCY_BY_STAGE",
    "LOOP_LAG",
    "REQUESTS",
    "REQUEST_LATENCY",
    "SERVED_LOG",
    "SERVED_QUEUE",
    "SHED",
    "STAGES",
    "STAGE_LATENCY",
]

REQUEST_LATENCY = latency_histogram(
    "recsys_api_request_seconds",
    "Time to answer GET /v1/recommendations (arrival to answer), by level served.",
    ["level"],
)
REQUESTS = Counter(
    "recsys_api_requests_total",
    "Answers of GET /v1/recommendations by status code and level served (none for 4xx/429).",
    ["status", "level"],
)
DEGRADATIONS = Counter(
    "recsys_api_degradations_total",
    "Steps down the ladder, by reason (a request may take several).",
    ["reason"],
)
STAGE_LATENCY = latency_histogram(
    "recsys_api_stage_seconds",
    "Time of each stage of a request as the API saw it (calls include the network).",
    ["stage"],
    buckets=STAGE_LATENCY_BUCKETS,
)
BREAKER_STATE = Gauge(
    "recsys_api_breaker_state",
    "Circuit breaker per dependency: 0 closed, 1 half open, 2 open (calls skipped).",
    ["dependency"],
)
SHED = Counter(
    "recsys_api_requests_shed_total",
    "Requests answered 429 at once because max_in_flight were in flight.",
)
IN_FLIGHT = Gauge("recsys_api_requests_in_flight", "Recommendation requests being handled.")
LOOP_LAG = Gauge(
    "recsys_api_event_loop_lag_seconds",
    "How late the API's event loop runs a timer (recent peak): the overload signal.",
)
SERVED_LOG = Counter(
    "recsys_api_served_log_total",
    "Served lists and what became of them in Kafka (sent, failed, dropped: queue full).",
    ["result"],
)
SERVED_QUEUE = Gauge("recsys_api_served_log_queued", "Served lists waiting for Kafka.")
LAST_LISTS = Gauge(
    "recsys_api_last_lists", "Members whose last list this process keeps (emergency level)."
)


# Children bound once: `.labels()` costs a lock and a dictionary lookup per call, on every request.
STAGES = ("experiments", "features", "candidates", "ranking", "fallback", "postrank")
ANSWERED_BY_LEVEL = {level: REQUESTS.labels(status="200", level=str(level)) for level in range(4)}
LATENCY_BY_LEVEL = {level: REQUEST_LATENCY.labels(level=str(level)) for level in range(4)}
LATENCY_BY_STAGE = {stage: STAGE_LATENCY.labels(stage=stage) for stage in STAGES}
DEGRADATIONS_BY_REASON = {reason: DEGRADATIONS.labels(reason=reason.value) for reason in Reason}
