"""Grafana dashboards as code: writes charts/recsys/files/dashboards/*.json.

The dashboards are built with grafana-foundation-sdk; the JSON they produce is committed (the
chart ships it as ConfigMaps for kube-prometheus-stack's Grafana sidecar) and checked for
staleness like the generated proto code: ``python tools/dashboards.py --check`` (in
``make test``) fails when a dashboard here and its committed JSON differ.

Every query uses ``$__rate_interval`` and the ``datasource`` variable, so a dashboard works on any
Prometheus data source. The metric names are the services' own; a test scrapes every running
process and fails if a panel names a metric that none exports (tests/integration).

Usage: python tools/dashboards.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "charts" / "recsys" / "files" / "dashboards"

_DATASOURCE = models.DataSourceRef(type_val="prometheus", uid="${datasource}")
_RATE = "$__rate_interval"
BUDGET_S = 0.1  # the API's latency objective: 100 ms
AVAILABILITY_BUDGET = 0.001  # 99.9 % over 30 days (docs/observability.md)
LATENCY_BUDGET = 0.01  # 99 % of answers under 100 ms


def _query(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend or "__auto")
        .ref_id(ref)
        .datasource(_DATASOURCE)
    )


def _targets(
    panel: timeseries.Panel | stat.Panel, queries: list[tuple[str, str]]
) -> timeseries.Panel | stat.Panel:
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_query(expr, legend, ref=chr(ord("A") + i)))
    return panel


def _thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(models.ThresholdsMode.ABSOLUTE)
        .steps([models.Threshold(value=v, color=c) for v, c in steps])
    )


def graph(
    title: str,
    unit: str,
    queries: list[tuple[str, str]],
    *,
    description: str = "",
    width: int = 12,
    stacked: bool = False,
    limit: float | None = None,
) -> timeseries.Panel:
    """A time series panel; ``limit`` draws a dashed red line (a budget or an objective)."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .span(width)
        .height(8)
        .datasource(_DATASOURCE)
        .fill_opacity(10 if not stacked else 60)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
    )
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    if limit is not None:
        panel = panel.thresholds(
            _thresholds((None, "transparent"), (limit, "red"))
        ).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)
        )
    result = _targets(panel, queries)
    assert isinstance(result, timeseries.Panel)
    return result


def single(
    title: str,
    unit: str,
    expr: str,
    *,
    description: str = "",
    steps: tuple[tuple[float | None, str], ...] = ((None, "green"),),
    width: int = 6,
    legend: str = "",
) -> stat.Panel:
    """A stat panel: one number (or one per series), coloured by ``steps``."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .span(width)
        .height(5)
        .datasource(_DATASOURCE)
        .graph_mode(common.BigValueGraphMode.AREA)
        .thresholds(_thresholds(*steps))
    )
    result = _targets(panel, [(expr, legend)])
    assert isinstance(result, stat.Panel)
    return result


def _dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["recsys"])
        .refresh("10s")
        .time("now-30m", "now")
        .timezone("browser")
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )


def _p(q: float, metric: str, by: str = "", selector: str = "") -> str:
    """The q-quantile of a histogram over the rate interval, per ``by`` labels."""
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({metric}_bucket{selector}[{_RATE}])))"


def _rate(metric: str, by: str = "", selector: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{selector}[{_RATE}]))"


# --- the dashboards -------------------------------------------------------------------------


def overview() -> db.Dashboard:
    requests = "recsys_api_requests_total"
    valid = '{status!~"400|422"}'
    bad = '{status=~"5..|429"}'
    served = '{level!="none"}'
    return (
        _dashboard(
            "recsys-overview",
            "Recsys / Overview",
            "The recommendation API against its objectives: traffic, latency against the 100 ms "
            "budget, the degradation level mix and the error budget left.",
        )
        .with_row(db.Row("Objectives (30 days)"))
        .with_panel(
            single(
                "Availability budget left",
                "percentunit",
                f"1 - ((sum(increase({requests}{bad}[30d])) or vector(0)) "
                f"/ sum(increase({requests}{valid}[30d]))) / {AVAILABILITY_BUDGET}",
                description="Share of the 30-day error budget (0.1 % of valid requests may "
                "fail: 5xx or 429) not yet spent.",
                steps=((None, "red"), (0.25, "orange"), (0.5, "green")),
            )
        )
        .with_panel(
            single(
                "Latency budget left",
                "percentunit",
                '1 - (1 - sum(increase(recsys_api_request_seconds_bucket{le="0.1"}[30d])) '
                f"/ sum(increase(recsys_api_request_seconds_count[30d]))) / {LATENCY_BUDGET}",
                description="Share of the 30-day latency budget (1 % of answers may take more "
                "than 100 ms) not yet spent.",
                steps=((None, "red"), (0.25, "orange"), (0.5, "green")),
            )
        )
        .with_panel(
            single(
                "Availability burn rate (1h)",
                "none",
                f"slo:api_request_errors:ratio_rate1h / {AVAILABILITY_BUDGET}",
                description="How fast the budget burns: 1 spends it in exactly 30 days; the "
                "fast-burn alert pages at 14.4 (with the 5 min window).",
                steps=((None, "green"), (1, "orange"), (14.4, "red")),
            )
        )
        .with_panel(
            single(
                "Latency burn rate (1h)",
                "none",
                f"slo:api_request_slow:ratio_rate1h / {LATENCY_BUDGET}",
                description="1 spends the latency budget in exactly 30 days; the fast-burn "
                "alert pages at 14.4.",
                steps=((None, "green"), (1, "orange"), (14.4, "red")),
            )
        )
        .with_row(db.Row("Traffic and latency"))
        .with_panel(
            graph(
                "Answers per second by status",
                "reqps",
                [(_rate(requests, "status"), "{{status}}")],
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Latency p50 / p99 against the 100 ms budget",
                "s",
                [
                    (_p(0.5, "recsys_api_request_seconds"), "p50"),
                    (_p(0.99, "recsys_api_request_seconds"), "p99"),
                ],
                limit=BUDGET_S,
            )
        )
        .with_panel(
            graph(
                "Degradation level mix",
                "percentunit",
                [
                    (
                        f"{_rate(requests, 'level', served)} "
                        f"/ ignoring(level) group_left {_rate(requests, selector=served)}",
                        "level {{level}}",
                    )
                ],
                description="Share of answers served at each level of the ladder (0 full, 1 "
                "degraded, 2 popular lists, 3 emergency).",
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Steps down the ladder by reason",
                "reqps",
                [(_rate("recsys_api_degradations_total", "reason"), "{{reason}}")],
                stacked=True,
            )
        )
        .with_row(db.Row("Load"))
        .with_panel(
            graph(
                "Requests in flight and shed (429)",
                "short",
                [
                    ("sum(recsys_api_requests_in_flight)", "in flight"),
                    (_rate("recsys_api_requests_shed_total"), "shed per second"),
                ],
                width=8,
            )
        )
        .with_panel(
            graph(
                "Event loop lag",
                "s",
                [("max by (instance) (recsys_api_event_loop_lag_seconds)", "{{instance}}")],
                description="How late the API's event loop runs a timer: the overload signal.",
                width=8,
            )
        )
        .with_panel(
            graph(
                "Targets up",
                "short",
                [('sum by (job) (up{job=~"recsys-.*"})', "{{job}}")],
                width=8,
            )
        )
    )


def serving() -> db.Dashboard:
    grpc = "recsys_grpc_server_handling_seconds"
    lookups = "recsys_featurestore_lookups_total"
    hits = '{result="hit"}'
    return (
        _dashboard(
            "recsys-serving",
            "Recsys / Serving",
            "The request path stage by stage: the API's view of each stage, the gRPC services' "
            "own latency and errors, feature cache tiers, models and breakers.",
        )
        .with_row(db.Row("Stages"))
        .with_panel(
            graph(
                "Stage latency p99 (as the API sees it)",
                "s",
                [(_p(0.99, "recsys_api_stage_seconds", "stage"), "{{stage}}")],
                limit=BUDGET_S,
            )
        )
        .with_panel(
            graph(
                "gRPC handling p99 by service",
                "s",
                [(_p(0.99, grpc, "service, method"), "{{service}} {{method}}")],
            )
        )
        .with_panel(
            graph(
                "gRPC answers that are not OK",
                "reqps",
                [
                    (
                        _rate("recsys_grpc_server_handled_total", "service, code", '{code!="OK"}'),
                        "{{service}} {{code}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Model inference p99",
                "s",
                [(_p(0.99, "recsys_model_inference_seconds", "service, model"), "{{model}}")],
            )
        )
        .with_row(db.Row("Feature store cache tiers"))
        .with_panel(
            graph(
                "Lookups by tier and result",
                "ops",
                [
                    (
                        _rate("recsys_featurestore_lookups_total", "tier, result"),
                        "{{tier}} {{result}}",
                    )
                ],
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Hit ratio by tier",
                "percentunit",
                [
                    (
                        f"{_rate(lookups, 'tier', hits)} / {_rate(lookups, 'tier')}",
                        "{{tier}}",
                    )
                ],
            )
        )
        .with_row(db.Row("Models and breakers"))
        .with_panel(
            graph(
                "Model version served",
                "short",
                [
                    (
                        "max by (service, model, version) (recsys_serving_model_version)",
                        "{{service}} {{model}} {{version}}",
                    )
                ],
                description="1 per version a process serves; two lines at once mean a rollout "
                "(or a process that did not reload).",
                width=8,
            )
        )
        .with_panel(
            graph(
                "Model reloads",
                "short",
                [
                    (
                        "sum by (service, model, result) "
                        f"(increase(recsys_serving_reloads_total[{_RATE}]))",
                        "{{service}} {{model}} {{result}}",
                    )
                ],
                width=8,
            )
        )
        .with_panel(
            graph(
                "Breaker state (0 closed, 1 half open, 2 open)",
                "short",
                [("max by (dependency) (recsys_api_breaker_state)", "{{dependency}}")],
                width=8,
                limit=2,
            )
        )
        .with_panel(
            graph(
                "Served log to Kafka",
                "ops",
                [(_rate("recsys_api_served_log_total", "result"), "{{result}}")],
                width=12,
            )
        )
        .with_panel(
            graph(
                "Members with a last list (emergency level)",
                "short",
                [("sum(recsys_api_last_lists)", "members")],
                width=12,
            )
        )
    )


def stream() -> db.Dashboard:
    return (
        _dashboard(
            "recsys-stream",
            "Recsys / Stream",
            "Events from ingest through the feature workers and the bronze writer: rates, lag, "
            "freshness, late and dead-lettered events.",
        )
        .with_row(db.Row("Ingest"))
        .with_panel(
            graph(
                "Events accepted per second by type",
                "ops",
                [(_rate("recsys_ingest_events_accepted_total", "event_type"), "{{event_type}}")],
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Ingest answers by status, events rejected by reason",
                "ops",
                [
                    (_rate("recsys_ingest_requests_total", "status"), "HTTP {{status}}"),
                    (_rate("recsys_ingest_events_rejected_total", "reason"), "rejected {{reason}}"),
                ],
            )
        )
        .with_row(db.Row("Feature workers"))
        .with_panel(
            graph(
                "Events consumed per second by outcome",
                "ops",
                [(_rate("recsys_features_events_total", "outcome"), "{{outcome}}")],
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Freshness p50 / p99 (store write time - event time)",
                "s",
                [
                    (_p(0.5, "recsys_features_freshness_seconds", "store"), "p50 {{store}}"),
                    ("recsys:features_freshness_seconds:p99_5m", "p99 {{store}} (5m)"),
                ],
                limit=1.0,
                description="The one-second freshness objective is the dashed line; the alert "
                "fires above 2 s for 10 min.",
            )
        )
        .with_panel(
            graph(
                "Consumer lag (records)",
                "short",
                [
                    ("sum by (topic) (recsys_features_consumer_lag)", "features {{topic}}"),
                    ("sum by (topic) (recsys_bronze_lag_records)", "bronze {{topic}}"),
                ],
            )
        )
        .with_panel(
            graph(
                "Late and dead-lettered events",
                "ops",
                [
                    (_rate("recsys_features_late_events_total"), "late (beyond grace)"),
                    (
                        _rate("recsys_features_dead_letters_total", "reason"),
                        "dead letter {{reason}}",
                    ),
                    (_rate("recsys_bronze_rejects_total", "topic"), "bronze reject {{topic}}"),
                ],
            )
        )
        .with_panel(
            graph(
                "Members held by the workers",
                "short",
                [
                    ("sum(recsys_features_members)", "members"),
                    (_rate("recsys_features_members_evicted_total"), "evicted per second"),
                ],
                width=8,
            )
        )
        .with_panel(
            graph(
                "Store write errors",
                "ops",
                [(_rate("recsys_features_store_errors_total", "store"), "{{store}}")],
                width=8,
            )
        )
        .with_panel(
            graph(
                "Bronze rows committed per second",
                "ops",
                [(_rate("recsys_bronze_rows_committed_total", "table"), "{{table}}")],
                width=8,
            )
        )
    )


def experiments() -> db.Dashboard:
    return (
        _dashboard(
            "recsys-experiments",
            "Recsys / Experiments",
            "Exposures per experiment and variant, the exposure log's delivery, and the "
            "configuration served.",
        )
        .with_row(db.Row("Exposures"))
        .with_panel(
            graph(
                "Exposures per second by experiment and variant",
                "ops",
                [
                    (
                        _rate("recsys_experiments_assignments_total", "experiment, variant"),
                        "{{experiment}} {{variant}}",
                    )
                ],
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Share of exposures per variant",
                "percentunit",
                [
                    (
                        f"{_rate('recsys_experiments_assignments_total', 'experiment, variant')}"
                        " / ignoring(variant) group_left "
                        f"{_rate('recsys_experiments_assignments_total', 'experiment')}",
                        "{{experiment}} {{variant}}",
                    )
                ],
                description="Compare with the configured split: a drift means a bucketing bug "
                "or a sample ratio mismatch.",
            )
        )
        .with_row(db.Row("Delivery and configuration"))
        .with_panel(
            graph(
                "Exposure log to Kafka by result",
                "ops",
                [(_rate("recsys_experiments_exposures_total", "result"), "{{result}}")],
                width=8,
            )
        )
        .with_panel(
            graph(
                "First exposures to Cassandra by result",
                "ops",
                [(_rate("recsys_experiments_first_exposures_total", "result"), "{{result}}")],
                width=8,
            )
        )
        .with_panel(
            graph(
                "Configuration version served",
                "short",
                [("max by (version) (recsys_experiments_config_version)", "{{version}}")],
                width=8,
            )
        )
    )


DASHBOARDS: dict[str, Callable[[], db.Dashboard]] = {
    "overview": overview,
    "serving": serving,
    "stream": stream,
    "experiments": experiments,
}


def render(build: Callable[[], db.Dashboard]) -> str:
    built = build().build()
    # Grafana links, shares and edits a panel by its id; the builder leaves them all 0.
    for number, panel in enumerate(built.panels or [], start=1):
        panel.id_val = number
    return json.dumps(built, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed JSON is stale")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the JSON goes")
    args = parser.parse_args(argv)
    out: Path = args.out
    wanted = {out / f"{name}.json": render(build) for name, build in DASHBOARDS.items()}
    on_disk = set(out.glob("*.json"))
    if args.check:
        stale = sorted(str(p) for p, text in wanted.items() if not _same(p, text))
        extra = sorted(str(p) for p in on_disk - wanted.keys())
        if stale or extra:
            print(
                f"dashboards out of date: {', '.join(stale + extra)}; run `make dashboards`",
                file=sys.stderr,
            )
            return 1
        print(f"{len(wanted)} dashboards up to date")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for path in on_disk - wanted.keys():
        path.unlink()
    for path, text in wanted.items():
        path.write_text(text)
    print(f"wrote {len(wanted)} dashboards to {out}")
    return 0


def _same(path: Path, text: str) -> bool:
    return path.exists() and path.read_text() == text


if __name__ == "__main__":
    sys.exit(main())
