"""Prometheus helpers shared by every service.

Latency histograms use :data:`LATENCY_BUCKETS`, dense around the 100 ms request SLO so that
burn-rate alerts can ask "what share of requests took longer than 0.1 s" exactly::

    REQUEST_LATENCY = latency_histogram("recsys_api_request_seconds", "API latency", ["route"])
    with REQUEST_LATENCY.labels(route="/v1/recommendations").time():
        ...
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Histogram, start_http_server

__all__ = [
    "LATENCY_BUCKETS",
    "STAGE_LATENCY_BUCKETS",
    "latency_histogram",
    "serve_metrics",
]

# Seconds. 0.1 is the end-to-end p99 objective; 0.05 and 0.075 show how close we run to it.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.015,
    0.02,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

# Finer buckets for one stage of the request (feature fetch, ANN search, ranking), whose budget is
# 10-40 ms.
STAGE_LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.04,
    0.06,
    0.1,
    0.25,
)


def latency_histogram(
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    *,
    buckets: Sequence[float] = LATENCY_BUCKETS,
    registry: CollectorRegistry | None = REGISTRY,
) -> Histogram:
    """A seconds histogram whose buckets always include the 0.1 s objective."""
    if 0.1 not in buckets:
        raise ValueError(f"latency buckets for {name} must include the 0.1 s objective")
    if not name.endswith("_seconds"):
        raise ValueError(f"latency metric {name} must end in _seconds (Prometheus base unit)")
    return Histogram(name, documentation, labelnames, buckets=tuple(buckets), registry=registry)


def serve_metrics(port: int, addr: str = "0.0.0.0") -> None:
    """Expose ``/metrics`` on its own port in a daemon thread (0 disables it)."""
    if port:
        start_http_server(port, addr=addr)
