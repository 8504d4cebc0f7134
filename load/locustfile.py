"""Members using the app, for Locust: open the app and get recommendations, look at a title or
two, play one (mostly from the top of the list), then pause, finish or skip it, sometimes rate
it, and come back for a fresh list, with think times between the steps.

The members are a mix (shares are options): members of the synthetic world (`u0000001`...),
members imported from MovieLens (`ml-u1`...), and new members the platform has never seen (cold
start). Their plays and ratings go through the ingest API like a client SDK's, so the lists they
get next reflect what they just did.

`make load` runs this headless against the local system with an SLO gate: at the end, the p99 of
GET /v1/recommendations and the failure ratio are compared with `--slo-p99-ms` and
`--slo-max-failure-ratio`, the verdict is printed, and Locust exits 1 when either is missed.
Options come from load/locust.conf, `LOCUST_*` environment variables or flags
(`locust -f load/locustfile.py --help`); docs/load.md has the details.

Only Locust and the standard library are imported: the Locust image carries nothing else.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from locust import HttpUser, between, events, task
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment

RECOMMENDATIONS = "/v1/recommendations/[member]"
COUNTRIES = ("US", "US", "US", "GB", "DE", "FR", "BR", "IN", "JP", "CA", "MX", "ES")
DEVICES = ("tv", "tv", "mobile", "mobile", "tablet", "web", "console")
log = logging.getLogger("recsys.load")
_verdict: list[str] = []  # printed last, after Locust's own summary


def _options(parser: LocustArgumentParser) -> None:
    group = parser.add_argument_group("recsys")
    group.add_argument(
        "--ingest-host",
        default="http://127.0.0.1:8081",
        help="Base URL of the ingest API, where plays and ratings go",
    )
    group.add_argument(
        "--api-key",
        # The key the ingest service itself is given (locally and in the chart's pods), else
        # the local default.
        default=os.environ.get("RECSYS_INGEST__API_KEYS", "local-dev-key").split(",")[0].strip(),
        help="X-API-Key for the ingest API (the first of RECSYS_INGEST__API_KEYS, else "
        "local-dev-key)",
    )
    group.add_argument(
        "--known-members",
        type=int,
        default=100_000,
        help="Members u0000001..uN of the synthetic world to draw from",
    )
    group.add_argument(
        "--imported-members",
        type=int,
        default=943,
        help="Members ml-u1..ml-uN imported from MovieLens (943 in ml-100k)",
    )
    group.add_argument(
        "--imported-share", type=float, default=0.2, help="Share of imported members"
    )
    group.add_argument(
        "--new-share", type=float, default=0.1, help="Share of members never seen before"
    )
    group.add_argument(
        "--slo-p99-ms",
        type=float,
        default=100.0,
        help="SLO gate: the p99 of GET /v1/recommendations must not exceed this",
    )
    group.add_argument(
        "--slo-max-failure-ratio",
        type=float,
        default=0.001,
        help="SLO gate: the share of failed requests (all of them) must not exceed this",
    )


def _check_options(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    problems = []
    for name in ("imported_share", "new_share", "slo_max_failure_ratio"):
        if not 0 <= getattr(options, name) <= 1:
            problems.append(f"--{name.replace('_', '-')} must be between 0 and 1")
    if options.imported_share + options.new_share > 1:
        problems.append("--imported-share plus --new-share must not exceed 1")
    if options.known_members < 1 or options.imported_members < 1:
        problems.append("--known-members and --imported-members must be at least 1")
    if options.slo_p99_ms <= 0:
        problems.append("--slo-p99-ms must be positive")
    if problems:
        raise SystemExit("recsys load: " + "; ".join(problems))


class Member(HttpUser):
    """One member's visits; `wait_time` is the pause between two visits."""

    wait_time = between(2, 10)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        assert options is not None
        self.options = options
        self.user_id = self._pick_member()
        self.country = random.choice(COUNTRIES)
        self.device = random.choice(DEVICES)
        self.watched: set[str] = set()

    def _pick_member(self) -> str:
        draw = random.random()
        if draw < self.options.new_share:
            return f"load-{uuid.uuid4().hex[:12]}"
        if draw < self.options.new_share + self.options.imported_share:
            return f"ml-u{random.randint(1, self.options.imported_members)}"
        return f"u{random.randint(1, self.options.known_members):07d}"

    @task
    def visit(self) -> None:
        items = self._recommendations()
        if not items:
            return
        self._think(1, 4)
        for title_id in random.sample(items[:10], k=min(len(items), random.randint(0, 2))):
            self._send([self._event("view", title_id, page="title_detail")], "view")
            self._think(1, 3)
        # Plays come mostly from the top of the list.
        rank = min(int(random.expovariate(0.35)), len(items) - 1)
        title_id = items[rank]
        self._send([self._event("play", title_id, position_sec=0)], "play")
        self._think(2, 6)
        self._finish(title_id)
        if random.random() < 0.3:
            rating = random.choices((1, 2, 3, 4, 5), weights=(1, 2, 4, 6, 5))[0]
            self._send([self._event("rate", title_id, rating=rating)], "rate")
        self._think(1, 3)
        self._recommendations()  # the fresh list, after what was just watched

    def _recommendations(self) -> list[str]:
        with self.client.get(
            f"/v1/recommendations/{self.user_id}",
            params={"k": 20, "country": self.country, "device": self.device},
            name=RECOMMENDATIONS,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(_problem(response))
                return []
            try:
                body = response.json()
                items = [item["id"] for item in body["items"]]
            except (ValueError, KeyError, TypeError) as exc:
                response.failure(f"unexpected answer: {exc}")
                return []
            response.success()
        return [i for i in items if i not in self.watched] or items

    def _finish(self, title_id: str) -> None:
        """Finish, pause or skip what was played, with a plausible watched time."""
        self.watched.add(title_id)
        outcome = random.choices(("complete", "pause", "skip"), weights=(5, 3, 2))[0]
        watched = {"complete": 5400.0, "pause": random.uniform(300, 3000)}.get(
            outcome, random.uniform(5, 120)
        )
        event = self._event(outcome, title_id, position_sec=watched, watched_sec=watched)
        self._send([event], outcome)

    def _event(self, event_type: str, title_id: str, **fields: Any) -> dict[str, Any]:
        return {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "user_id": self.user_id,
            "title_id": title_id,
            "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "device": self.device,
            "country": self.country,
            "app_version": "locust-1",
            **fields,
        }

    def _send(self, batch: list[dict[str, Any]], kind: str) -> None:
        with self.client.post(
            f"{self.options.ingest_host}/v1/events",
            data=json.dumps({"events": batch}),
            headers={"Content-Type": "application/json", "X-API-Key": self.options.api_key},
            name=f"/v1/events ({kind})",
            catch_response=True,
        ) as response:
            if response.status_code != 202:
                response.failure(_problem(response))
            elif response.json().get("rejected"):
                response.failure(f"event refused: {response.text[:300]}")
            else:
                response.success()

    @staticmethod
    def _think(low: float, high: float) -> None:
        time.sleep(random.uniform(low, high))  # gevent patches sleep: it yields, not blocks


def _problem(response: Any) -> str:
    """What went wrong, for the error report: the HTTP status and body, or the connection
    error (status 0) when there was no answer."""
    if response.status_code == 0:
        return f"no answer: {type(response.error).__name__}"
    return f"HTTP {response.status_code}: {(response.text or '')[:200]}"


def _slo_gate(environment: Environment, **_: Any) -> None:
    """Print the SLO verdict and make Locust exit 1 when it is missed."""
    options = environment.parsed_options
    if options is None or environment.stats is None:
        return
    recommendations = environment.stats.get(RECOMMENDATIONS, "GET")
    total = environment.stats.total
    if recommendations.num_requests == 0:
        _verdict.append("SLO gate: FAILED: no recommendation request was made")
        environment.process_exit_code = 1
        return
    p99_ms = recommendations.get_response_time_percentile(0.99)
    failure_ratio = total.fail_ratio
    checks = [
        (
            f"p99 of GET /v1/recommendations {p99_ms:.0f} ms (limit {options.slo_p99_ms:g} ms)",
            p99_ms <= options.slo_p99_ms,
        ),
        (
            f"failure ratio {failure_ratio:.4%} of {total.num_requests} requests "
            f"(limit {options.slo_max_failure_ratio:.4%})",
            failure_ratio <= options.slo_max_failure_ratio,
        ),
    ]
    _verdict.append(
        f"recommendations: {recommendations.num_requests} requests, "
        f"{recommendations.total_rps:.1f}/s, p50 {recommendations.median_response_time:.0f} ms, "
        f"p95 {recommendations.get_response_time_percentile(0.95):.0f} ms, p99 {p99_ms:.0f} ms"
    )
    _verdict.extend(f"  {'ok    ' if ok else 'MISSED'} {text}" for text, ok in checks)
    passed = all(ok for _, ok in checks)
    _verdict.append(f"SLO gate: {'PASSED' if passed else 'FAILED'}")
    environment.process_exit_code = 0 if passed else 1


def _print_verdict(**_: Any) -> None:
    print("\n".join(_verdict), flush=True)


# Registered by call, not as decorators: an untyped decorator would untype the function.
events.init_command_line_parser.add_listener(_options)
events.test_start.add_listener(_check_options)
events.quitting.add_listener(_slo_gate)
events.quit.add_listener(_print_verdict)
