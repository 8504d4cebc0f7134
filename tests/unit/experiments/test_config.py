"""The experiments configuration: the shipped file is valid, and every kind of mistake is
refused with the line it is on."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsys.cli.main import build_app
from recsys.config import Settings
from recsys_experiments.config import ConfigError, load_config, parse_config

GOOD = """\
version: "t1"
holdout: {percent: 1.0}
layers:
  - name: ranking
    experiments:
      - id: a
        buckets: [0, 5000]
        variants:
          - {name: control, weight: 1}
          - name: treat
            weight: 1
            serving:
              weights: {play: 1, complete: 1, rate_high: 0}
"""


def test_the_shipped_configuration_is_valid() -> None:
    config = load_config(Settings().experiments.config)
    assert config.layers
    assert 0 < config.holdout.percent <= 10


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="exp.yaml")
    return caught.value.problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("percent: 1.0", "percent: 30"), "exp.yaml:2: holdout.percent: Input should"),
        (
            GOOD.replace(
                "{play: 1, complete: 1, rate_high: 0}", "{play: 0, complete: 0, rate_high: 0}"
            ),
            "exp.yaml:13: layers.0.experiments.0.variants.1.serving.weights: objective weights are "
            "all 0",
        ),
        (GOOD.replace("        buckets:", "        colour: red\n        buckets:"), "exp.yaml:7: "),
        (GOOD.replace("[0, 5000]", "[6000, 5000]"), "exp.yaml:6: layers.0.experiments.0: buckets"),
        (GOOD.replace("{name: control, weight: 1}", "{name: treat, weight: 1}"), "names repeat"),
        (GOOD.replace('version: "t1"\n', ""), "exp.yaml:1: version: Field required"),
        ("version: [\n", "exp.yaml:2: not valid YAML"),
        ("- 1\n", "exp.yaml:1: the configuration must be a mapping"),
    ],
)
def test_a_mistake_is_refused_with_its_line(text: str, expected: str) -> None:
    assert any(p.startswith(expected) or expected in p for p in _problems(text)), _problems(text)


def test_experiments_of_a_layer_may_not_share_buckets() -> None:
    text = (
        GOOD
        + """\
      - id: b
        buckets: [4000, 6000]
        variants: [{name: x, weight: 1}]
"""
    )
    (problem,) = _problems(text)
    assert "experiments a and b share buckets" in problem
    assert problem.startswith("exp.yaml:4: layers.0: ")


def test_two_layers_may_not_set_the_same_serving_parameter() -> None:
    text = (
        GOOD
        + """\
  - name: other
    experiments:
      - id: c
        buckets: [0, 100]
        variants:
          - name: y
            weight: 1
            serving: {weights: {play: 2, complete: 0, rate_high: 0}}
"""
    )
    (problem,) = _problems(text)
    assert "layers ranking and other both set serving.weights" in problem


def test_validate_command_prints_each_problem_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("percent: 1.0", "percent: 30").replace("weight: 1}", "weight: -1}"))
    result = CliRunner().invoke(build_app(), ["experiments", "validate", str(bad)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith(str(bad))]
    assert len(lines) == 2, result.output
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    result = CliRunner().invoke(build_app(), ["experiments", "validate", str(good)])
    assert result.exit_code == 0, result.output
    assert "valid, version t1: 1 layer(s), 1 experiment(s), holdout 1%" in result.output
    missing = CliRunner().invoke(
        build_app(), ["experiments", "validate", str(tmp_path / "none.yaml")]
    )
    assert missing.exit_code == 1
    assert "cannot read" in missing.output
