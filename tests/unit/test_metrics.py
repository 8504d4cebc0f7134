from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from recsys.metrics import LATENCY_BUCKETS, STAGE_LATENCY_BUCKETS, latency_histogram


def test_every_bucket_set_contains_the_slo() -> None:
    assert 0.1 in LATENCY_BUCKETS
    assert 0.1 in STAGE_LATENCY_BUCKETS
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)


def test_histogram_exports_the_slo_bucket() -> None:
    registry = CollectorRegistry()
    h = latency_histogram("recsys_test_seconds", "test", ["route"], registry=registry)
    h.labels(route="/x").observe(0.08)
    h.labels(route="/x").observe(0.2)
    text = generate_latest(registry).decode()
    assert 'recsys_test_seconds_bucket{le="0.1",route="/x"} 1.0' in text
    assert 'recsys_test_seconds_count{route="/x"} 2.0' in text


def test_buckets_without_the_slo_are_refused() -> None:
    with pytest.raises(ValueError, match=r"0\.1 s objective"):
        latency_histogram("recsys_bad_seconds", "x", buckets=(0.05, 0.2), registry=None)


def test_names_must_carry_the_unit() -> None:
    with pytest.raises(ValueError, match="_seconds"):
        latency_histogram("recsys_latency_ms", "x", registry=None)
