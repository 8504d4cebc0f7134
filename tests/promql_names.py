"""What PromQL in the repo names: the expressions of the Grafana dashboards and the Prometheus
rules, and the metric names their selectors use (parsed with promql-parser, Prometheus's grammar,
so an expression that does not parse is an error here too)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from recsys.config import repo_root
from recsys.infra.prometheus import RULES_DIR

ROOT = repo_root()
DASHBOARDS_DIR = ROOT / "charts" / "recsys" / "files" / "dashboards"
# Grafana's variables, replaced by what Grafana would put there before Prometheus parses them.
_GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
# Series Prometheus makes itself for every target.
BUILTIN = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})


def grafana_to_promql(expr: str) -> str:
    for variable, value in _GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def dashboard_expressions(directory: Path = DASHBOARDS_DIR) -> dict[str, str]:
    """Every query of every dashboard panel, keyed by ``dashboard/panel title/ref``."""
    found = {}
    for path in sorted(directory.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in _panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                key = f"{path.stem}/{panel.get('title')}/{target.get('refId')}"
                found[key] = grafana_to_promql(target["expr"])
    return found


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row holds its panels


def rule_files(directory: Path = RULES_DIR) -> list[Path]:
    return sorted(directory.glob("*.rules.yml"))


def rule_groups(directory: Path = RULES_DIR) -> list[dict[str, Any]]:
    return [
        group
        for path in rule_files(directory)
        for group in yaml.safe_load(path.read_text())["groups"]
    ]


def rules(directory: Path = RULES_DIR) -> list[dict[str, Any]]:
    return [rule for group in rule_groups(directory) for rule in group["rules"]]


def rule_expressions(directory: Path = RULES_DIR) -> dict[str, str]:
    return {rule.get("record") or rule["alert"]: rule["expr"] for rule in rules(directory)}


def recorded_names(directory: Path = RULES_DIR) -> set[str]:
    return {rule["record"] for rule in rules(directory) if "record" in rule}


def metric_names(expr: str) -> set[str]:
    """The metric names the expression's selectors read. Raises ValueError if it does not
    parse (or mixes types, as Prometheus would refuse)."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    names.add(matcher.value)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def unknown_names(expressions: dict[str, str], known: Iterable[str]) -> dict[str, set[str]]:
    """Per expression, the names it reads that are not in ``known``."""
    known = set(known)
    unknown = {key: metric_names(expr) - known for key, expr in expressions.items()}
    return {key: names for key, names in unknown.items() if names}


def exported_names(families: Iterable[tuple[str, str]]) -> set[str]:
    """The series names a scrape can contain, from (family name, type) pairs as the text
    parser yields them (a counter's family drops `_total`, a histogram's its suffixes)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "gauge": ("",),
        "info": ("_info",),
        "stateset": ("",),
        "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
        "unknown": ("",),
    }
    return {name + suffix for name, kind in families for suffix in suffixes.get(kind, ("",))}
