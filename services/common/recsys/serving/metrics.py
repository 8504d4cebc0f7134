"""The serving services' Prometheus metrics (one definition, labelled by service)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from recsys.metrics import STAGE_LATENCY_BUCKETS, latency_histogram

__all__ = [
    "CACHE_LOOKUPS",
    "HANDLED",
    "HANDLING",
    "INFERENCE",
    "LOADED_VERSION",
    "READY",
    "RELOADS",
]

# Finer than a request's buckets: a call here takes about a millisecond.
CALL_BUCKETS = (0.00025, *STAGE_LATENCY_BUCKETS)

HANDLING = latency_histogram(
    "recsys_grpc_server_handling_seconds",
    "Server-side time of a gRPC call, from the handler's start to its answer.",
    ["service", "method"],
    buckets=CALL_BUCKETS,
)
HANDLED = Counter(
    "recsys_grpc_server_handled",
    "gRPC calls answered, by status code.",
    ["service", "method", "code"],
)
INFERENCE = latency_histogram(
    "recsys_model_inference_seconds",
    "Time per call in a model (onnxruntime, FAISS) with the inputs it builds for the call.",
    ["service", "model"],
    buckets=CALL_BUCKETS,
)
CACHE_LOOKUPS = Counter(
    "recsys_featurestore_lookups",
    "Feature lookups per tier (memory = the L1 cache, redis, cassandra) and result "
    "(hit, miss, error).",
    ["tier", "result"],
)
LOADED_VERSION = Gauge(
    "recsys_serving_model_version",
    "1 for the registry version a service serves as current, per model.",
    ["service", "model", "version"],
)
RELOADS = Counter(
    "recsys_serving_reloads",
    "Registry versions loaded (result=ok) or refused (result=error) by a running service.",
    ["service", "model", "result"],
)
READY = Gauge(
    "recsys_serving_ready",
    "1 while the service reports SERVING to the health service.",
    ["service"],
)
