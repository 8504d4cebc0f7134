"""Deterministic assignment: hash(salt, user) -> bucket -> experiment and variant.

    result = assign(config, "u42", country="US", device="tv")
    result.holdout, result.assignments, result.serving

The bucket is the first 8 bytes of SHA-256 over ``"<salt>:<user_id>"`` modulo 10,000: the same
member lands in the same bucket on every process, language and restart, and a new salt (a new
experiment) reshuffles members independently of every other. Order of evaluation:

1. the permanent holdout (its own salt): a holdout member gets the defaults and no experiment;
2. per layer, the member's layer bucket picks the experiment owning it, if any, and if the
   member matches its targeting; then the member's bucket under the experiment's salt picks the
   variant by the variants' weights;
3. the serving parameters: the defaults, then each assigned variant's (layers never set the
   same parameter: the configuration refuses it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from recsys_experiments.config import BUCKETS, Experiment, ExperimentsConfig, ServingParams

__all__ = ["Assignment", "Assignments", "assign", "bucket"]


def bucket(salt: str, user_id: str) -> int:
    """0..9999, stable for a (salt, member) pair."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment_id: str
    layer: str
    variant: str
    bucket: int  # the member's bucket under the experiment's salt (the variant split)


@dataclass(frozen=True, slots=True)
class Assignments:
    holdout: bool
    assignments: tuple[Assignment, ...]
    serving: ServingParams
    config_version: str


def _variant(experiment: Experiment, user_id: str) -> tuple[str, int, ServingParams]:
    b = bucket(experiment.variant_salt, user_id)
    total = sum(v.weight for v in experiment.variants)
    point = b * total // BUCKETS  # 0 .. total-1
    for variant in experiment.variants:
        if point < variant.weight:
            return variant.name, b, variant.serving
        point -= variant.weight
    raise AssertionError("weights cover every point")  # pragma: no cover


def assign(config: ExperimentsConfig, user_id: str, *, country: str, device: str) -> Assignments:
    serving = config.serving_defaults
    if bucket(config.holdout.salt, user_id) < round(config.holdout.percent * BUCKETS / 100):
        return Assignments(True, (), serving, config.version)
    found: list[Assignment] = []
    for layer in config.layers:
        layer_bucket = bucket(layer.bucket_salt, user_id)
        for experiment in layer.experiments:
            first, end = experiment.buckets
            if not first <= layer_bucket < end:
                continue
            if experiment.targeting.admits(country, device):
                name, b, params = _variant(experiment, user_id)
                found.append(Assignment(experiment.id, layer.name, name, b))
                serving = params.over(serving)
            break  # one experiment per layer owns a bucket
    return Assignments(False, tuple(found), serving, config.version)
