"""Open-loop load on the recommendation API of the running system (``make up``), with the
simulator feeding events to the ingest API meanwhile.

    make bench-api                                                # 50,100,200,300 req/s
    make bench-api BENCH_ARGS="--rates 100,600 --duration 30 --simulator-rate 0"

Open loop: request i of a rate is sent at ``start + i / rate`` whether or not earlier ones have
been answered, and its latency is counted from that planned instant, so a server (or a client)
that falls behind shows as latency instead of silently lowering the rate. Members are
``u0000001``... up to ``--members`` (those the world does not know are cold starts). Per rate:

- client latency p50/p95/p99/max, the rate achieved, status codes (5xx, 429, errors);
- the level mix (share of answers at levels 0-3) and the reasons for stepping down;
- CPU per request: the API process's CPU time over the answers, and every ``recsys-*``
  process's (API, gRPC services, feature worker, ingest, bronze), from /proc via psutil;
- where the time goes: each stage's p50/p99 as the API measured it (``timing_ms``).

This script and the simulator share the machine's two cores with the system they measure: the
figures are for everything on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import psutil
from background_traffic import simulator

from recsys.config import Settings


@dataclass
class Outcome:
    latency_ms: float
    status: int  # 0: no answer (connection error or client timeout)
    level: int | None = None
    reasons: tuple[str, ...] = ()
    stages: dict[str, float] = field(default_factory=dict)


def _recsys_processes() -> dict[int, psutil.Process]:
    found = {}
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if any(Path(part).name.startswith("recsys-") for part in cmdline[:2]):
            found[process.pid] = process
    return found


def _name(process: psutil.Process) -> str:
    """``recsys-api``, ``recsys-ranker``, ... (the console script a process runs)."""
    try:
        cmdline = process.cmdline()
    except psutil.Error:
        return "gone"
    return next((Path(p).name for p in cmdline[:2] if Path(p).name.startswith("recsys-")), "?")


def _cpu_s(processes: dict[int, psutil.Process]) -> dict[int, float]:
    out = {}
    for pid, process in processes.items():
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        out[pid] = times.user + times.system
    return out


async def _one(session: aiohttp.ClientSession, path: str, planned: float) -> Outcome:
    try:
        async with session.get(path) as response:
            status = response.status
            body = await response.json() if status == 200 else None
    except (aiohttp.ClientError, TimeoutError):
        return Outcome((time.perf_counter() - planned) * 1000, 0)
    latency = (time.perf_counter() - planned) * 1000
    if body is None:
        return Outcome(latency, status)
    return Outcome(
        latency,
        200,
        body["level"],
        tuple(step["reason"] for step in body["why"]),
        body["timing_ms"],
    )


async def _run_rate(
    client: aiohttp.ClientSession, args: argparse.Namespace, rate: float, duration_s: float
) -> tuple[list[Outcome], float]:
    count = int(rate * duration_s)
    tasks = []
    start = time.perf_counter() + 0.05
    for i in range(count):
        planned = start + i / rate
        delay = planned - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        member = f"u{i % args.members + 1:07d}"
        path = f"/v1/recommendations/{member}?k={args.k}&country={args.country}"
        tasks.append(asyncio.create_task(_one(client, path, planned)))
    outcomes = await asyncio.gather(*tasks)
    return outcomes, time.perf_counter() - start


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _report(
    rate: float, outcomes: list[Outcome], elapsed_s: float, cpu_s: dict[str, float]
) -> None:
    cpu_api_s = cpu_s.get("recsys-api", 0.0)
    cpu_all_s = sum(cpu_s.values())
    latencies = [o.latency_ms for o in outcomes]
    statuses = Counter(o.status for o in outcomes)
    answered = [o for o in outcomes if o.status == 200]
    levels = Counter(o.level for o in answered)
    n = len(outcomes)
    print(
        f"\n{rate:g} req/s planned, {n / elapsed_s:.1f} req/s sent over {elapsed_s:.1f} s, "
        f"{n} requests"
    )
    print(
        f"  latency ms: p50 {_pct(latencies, 50):.1f}  p95 {_pct(latencies, 95):.1f}  "
        f"p99 {_pct(latencies, 99):.1f}  max {max(latencies):.1f}"
    )
    fives = sum(c for s, c in statuses.items() if s >= 500)
    print(
        f"  status: 200 {statuses[200]}  5xx {fives}  429 {statuses[429]}  "
        f"no answer {statuses[0]}  other {n - statuses[200] - fives - statuses[429] - statuses[0]}"
    )
    mix = "  ".join(
        f"L{level} {100 * levels[level] / max(1, len(answered)):.1f}%" for level in range(4)
    )
    print(f"  levels: {mix}")
    reasons = Counter(r for o in answered for r in o.reasons)
    if reasons:
        print("  stepped down: " + ", ".join(f"{r} {c}" for r, c in reasons.most_common(6)))
    print(
        f"  CPU per request: API {1000 * cpu_api_s / max(1, n):.2f} ms, all recsys processes "
        f"{1000 * cpu_all_s / max(1, n):.2f} ms"
    )
    print(
        "  CPU by process, ms per request: "
        + "  ".join(
            f"{name.removeprefix('recsys-')} {1000 * spent / max(1, n):.2f}"
            for name, spent in sorted(cpu_s.items(), key=lambda kv: -kv[1])
        )
    )
    stages: dict[str, list[float]] = defaultdict(list)
    for o in answered:
        for stage, ms in o.stages.items():
            stages[stage].append(ms)
    print(
        "  stages (API's view) p50/p99 ms: "
        + "  ".join(
            f"{s} {_pct(v, 50):.2f}/{_pct(v, 99):.2f}" for s, v in stages.items() if s != "total"
        )
    )
    if "total" in stages:
        print(
            f"  server total p50/p99 ms: {_pct(stages['total'], 50):.2f}/"
            f"{_pct(stages['total'], 99):.2f}"
        )


async def _main(args: argparse.Namespace) -> int:
    settings = Settings()
    url = args.url or f"http://{settings.api.host}:{settings.api.port}"
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    # aiohttp rather than httpx: about a third of the CPU per request, and this client shares
    # the cores with the system it measures.
    connector = aiohttp.TCPConnector(limit=1024)
    async with aiohttp.ClientSession(url, timeout=timeout, connector=connector) as client:
        try:
            async with client.get("/readyz") as ready:
                ready_status, ready_text = ready.status, await ready.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            print(f"the API at {url} does not answer ({exc}); start the system with `make up`")
            return 2
        if ready_status != 200:
            print(f"the API at {url} is not ready: {ready_text}")
            return 2
        print(
            f"API {url}, {args.members} members, k={args.k}, country {args.country}, "
            f"{args.duration:g} s per rate after {args.warmup:g} s of warm-up; "
            f"{os.cpu_count()} cores shared with the system"
        )
        for rate in args.rates:
            await _run_rate(client, args, rate, args.warmup)
            processes = _recsys_processes()
            before = _cpu_s(processes)
            outcomes, elapsed = await _run_rate(client, args, rate, args.duration)
            after = _cpu_s(processes)
            spent: dict[str, float] = defaultdict(float)
            for pid in after.keys() & before.keys():
                spent[_name(processes[pid])] += after[pid] - before[pid]
            _report(rate, outcomes, elapsed, spent)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[50.0, 100.0, 200.0, 300.0],
        help="arrival rates, requests/s, comma-separated",
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per rate")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--country", default="US")
    parser.add_argument("--timeout", type=float, default=5.0, help="client timeout, s")
    parser.add_argument(
        "--simulator-rate", type=float, default=100.0, help="events/s meanwhile (0: none)"
    )
    parser.add_argument("--url", default="", help="API base URL (default: RECSYS_API__*)")
    args = parser.parse_args()
    if args.duration <= 0 or args.members < 1 or not args.rates or min(args.rates) <= 0:
        parser.error("--duration, --members and every rate must be positive")
    total_s = len(args.rates) * (args.duration + args.warmup + 2) + 10
    with simulator(rate=args.simulator_rate, duration_s=total_s):
        code = asyncio.run(_main(args))
    sys.exit(code)


if __name__ == "__main__":
    main()
