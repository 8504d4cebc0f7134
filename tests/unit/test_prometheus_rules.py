"""The Prometheus rules (charts/recsys/files/prometheus): promtool finds them valid, their unit
tests pass (tests/prometheus/rules.test.yml: every alert fires when it should and stays silent
when it should not), a broken rule is caught, and every platform metric they name is one a
service defines. promtool comes from Debian's prometheus package, installed on first use."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from recsys.config import repo_root
from tests.promql_names import metric_names, rule_expressions, rule_files, rules

ROOT = repo_root()
RULE_FILES = rule_files()
UNIT_TESTS = ROOT / "tests" / "prometheus" / "rules.test.yml"
# What Prometheus adds to a histogram's or counter's name.
_SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def _run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=False, cwd=ROOT
    )


def test_the_rule_files_are_valid(promtool: Path) -> None:
    assert RULE_FILES
    checked = _run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_fires_and_stays_silent_as_its_unit_tests_say(promtool: Path) -> None:
    tested = _run(promtool, "test", "rules", str(UNIT_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    tested_alerts = set(re.findall(r"alertname: (\w+)", UNIT_TESTS.read_text()))
    assert tested_alerts == _alerts(), "every alert needs a unit test"


def test_a_broken_expression_is_caught(promtool: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.rules.yml"
    text = RULE_FILES[0].read_text().replace("sum(rate(", "sum(rate((", 1)
    broken.write_text(text)
    checked = _run(promtool, "check", "rules", str(broken))
    assert checked.returncode != 0
    assert "parse error" in checked.stdout + checked.stderr


def test_a_wrong_expectation_fails_the_unit_tests(promtool: Path, tmp_path: Path) -> None:
    text = UNIT_TESTS.read_text().replace(
        "severity: ticket, slo: api-availability", "severity: page, slo: api-availability"
    )
    for rule_file in RULE_FILES:
        (tmp_path / rule_file.name).write_text(rule_file.read_text())
    text = text.replace("../../charts/recsys/files/prometheus/", "")
    (tmp_path / "rules.test.yml").write_text(text)
    tested = _run(promtool, "test", "rules", str(tmp_path / "rules.test.yml"))
    assert tested.returncode != 0


def test_every_platform_metric_the_rules_name_is_defined_by_a_service() -> None:
    source = "\n".join(
        p.read_text() for p in (ROOT / "services").rglob("*.py") if "_pb2" not in p.name
    )
    named = {
        name
        for expr in rule_expressions().values()
        for name in metric_names(expr)
        if name.startswith("recsys_")
    }
    assert named
    missing = sorted(n for n in named if f'"{n}"' not in source and f'"{_base(n)}"' not in source)
    assert not missing, f"no service defines {missing}"


def _base(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def _alerts() -> set[str]:
    return {rule["alert"] for rule in rules() if "alert" in rule}
