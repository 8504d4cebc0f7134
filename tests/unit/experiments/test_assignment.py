"""Deterministic assignment: stable buckets, the holdout's share, variant splits, exclusive
experiments within a layer, independent layers, targeting and the serving parameters."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from recsys.cli.main import build_app
from recsys_experiments.assignment import Assignments, assign, bucket
from recsys_experiments.config import ExperimentsConfig, parse_config

MEMBERS = [f"u{i:07d}" for i in range(100_000)]

CONFIG = """\
version: "t2"
holdout: {percent: 1.0, salt: h}
defaults: {candidates: 500, weights: {play: 1, complete: 0.5, rate_high: 0.5}}
layers:
  - name: ranking
    experiments:
      - id: a
        buckets: [0, 5000]
        variants:
          - {name: control, weight: 1}
          - name: treat
            weight: 3
            serving: {weights: {play: 1, complete: 1, rate_high: 0}}
      - id: b
        buckets: [5000, 7000]
        variants: [{name: only, weight: 1}]
  - name: retrieval
    experiments:
      - id: c
        buckets: [0, 10000]
        targeting: {countries: [US], devices: [tv]}
        variants:
          - {name: control, weight: 1}
          - name: fewer
            weight: 1
            serving: {candidates: 300}
"""


@pytest.fixture(scope="module")
def config() -> ExperimentsConfig:
    return parse_config(CONFIG)


@pytest.fixture(scope="module")
def results(config: ExperimentsConfig) -> list[Assignments]:
    """The 100,000 members' assignments as a US member on a TV, computed once."""
    return [assign(config, m, country="US", device="tv") for m in MEMBERS]


def _within(observed: int, n: int, p: float) -> bool:
    """Inside 5 standard deviations of a binomial(n, p) mean."""
    return abs(observed - n * p) <= 5 * math.sqrt(n * p * (1 - p))


def test_the_bucket_is_sha256_of_salt_and_member_and_stable_across_processes() -> None:
    digest = hashlib.sha256(b"salt:u1").digest()
    assert bucket("salt", "u1") == int.from_bytes(digest[:8], "big") % 10_000
    code = "from recsys_experiments.assignment import bucket; print(bucket('salt', 'u1'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(other.stdout) == bucket("salt", "u1")


def test_the_holdout_share_over_100k_members_is_its_setting(
    config: ExperimentsConfig, results: list[Assignments]
) -> None:
    holdout = [r for r in results if r.holdout]
    assert _within(len(holdout), len(MEMBERS), 0.01), len(holdout)
    assert all(not r.assignments for r in holdout)
    assert all(r.serving == config.serving_defaults for r in holdout)


def test_variants_split_by_weight_and_layers_are_exclusive_inside_independent_across(
    results: list[Assignments],
) -> None:
    entered = [r for r in results if not r.holdout]
    n = len(entered)
    per_layer = Counter(a.layer for r in entered for a in r.assignments)
    experiments = Counter(a.experiment_id for r in entered for a in r.assignments)
    variants = Counter((a.experiment_id, a.variant) for r in entered for a in r.assignments)
    # At most one experiment per layer for anyone.
    assert all(len({a.layer for a in r.assignments}) == len(r.assignments) for r in entered)
    assert _within(experiments["a"], n, 0.5)
    assert _within(experiments["b"], n, 0.2)
    assert per_layer["retrieval"] == n  # c owns every bucket and everyone is US/tv here
    assert _within(variants[("a", "treat")], experiments["a"], 0.75)
    # Independent layers: c's split is the same inside a as overall.
    in_a = [r for r in entered if any(x.experiment_id == "a" for x in r.assignments)]
    fewer_in_a = sum(any(x.variant == "fewer" for x in r.assignments) for r in in_a)
    assert _within(fewer_in_a, len(in_a), 0.5)


def test_targeting_and_serving_parameters(config: ExperimentsConfig) -> None:
    member = next(
        m
        for m in MEMBERS
        if {
            (a.experiment_id, a.variant)
            for a in assign(config, m, country="US", device="tv").assignments
        }
        == {("a", "treat"), ("c", "fewer")}
    )
    both = assign(config, member, country="US", device="tv")
    assert both.serving.candidates == 300  # from c
    assert both.serving.weights is not None
    assert both.serving.weights.complete == 1  # from a
    assert both.serving.max_per_genre == 100  # neither: the built-in default
    outside = assign(config, member, country="FR", device="tv")
    assert [a.experiment_id for a in outside.assignments] == ["a"]  # c targets US only
    assert outside.serving.candidates == 500
    assert assign(config, member, country="US", device="tv") == both  # deterministic


def test_assign_command_prints_the_assignment_as_json(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(CONFIG)
    result = CliRunner().invoke(
        build_app(), ["experiments", "assign", "u0000042", "--config", str(path), "--json"]
    )
    assert result.exit_code == 0, result.output
    shown = orjson.loads(result.output)
    expected = assign(parse_config(CONFIG), "u0000042", country="US", device="tv")
    assert shown["holdout"] == expected.holdout
    assert [a["variant"] for a in shown["assignments"]] == [a.variant for a in expected.assignments]
    bad = CliRunner().invoke(
        build_app(), ["experiments", "assign", "bad id", "--config", str(path)]
    )
    assert bad.exit_code == 1
    assert "malformed" in bad.output
