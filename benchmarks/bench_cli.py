"""How fast `recsys` answers: `--help` and the light commands, each run as a fresh process.

    make bench-cli                                         # 10 runs of each command
    .venv/bin/python benchmarks/bench_cli.py --runs 20 --user u42

Runs every command as ``.venv/bin/recsys ...`` in a subprocess, as a person would, after one
warm-up run, and prints the wall-clock time at p50 and p90 and its maximum, the CPU time (user +
system) of the process at p50, and the exit codes seen (`services status` exits 1 while a
service is not running: an answer all the same). `features show` and `features trending` read
Redis (and Cassandra for what Redis lacks): run `recsys infra up` first, or their figures are
those of a refused connection. The header says whether Python may write its bytecode cache
(``PYTHONDONTWRITEBYTECODE`` makes it read-only: modules without an installed ``.pyc`` are
compiled again on every run; uv installs the dependencies' bytecode, not this checkout's) and
the load average, since both move these figures a lot.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RECSYS = Path(sys.executable).parent / "recsys"


@dataclass(frozen=True, slots=True)
class Run:
    wall_s: float
    cpu_s: float
    code: int


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(argv: list[str]) -> Run:
    cpu0, t0 = _children_cpu(), time.perf_counter()
    result = subprocess.run(
        [str(RECSYS), *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return Run(time.perf_counter() - t0, _children_cpu() - cpu0, result.returncode)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each command")
    parser.add_argument("--user", default="bench-cli-nobody", help="member for features show")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    commands = [
        ["--help"],
        ["services", "status"],
        ["features", "show", args.user],
        ["features", "trending", "US"],
    ]
    cache = "read-only" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "writable"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{RECSYS}, {args.runs} runs each; bytecode cache {cache}; load average {load}")
    print(f"  {'command':<40} {'p50 s':>7} {'p90 s':>7} {'max s':>7} {'cpu p50 s':>10}  exit codes")
    for argv in commands:
        run_once(argv)  # warm-up: page cache, and the bytecode cache where Python may write one
        runs = [run_once(argv) for _ in range(args.runs)]
        walls = [r.wall_s for r in runs]
        cpu = _percentile([r.cpu_s for r in runs], 0.5)
        codes = ",".join(sorted({str(r.code) for r in runs}))
        print(
            f"  {'recsys ' + ' '.join(argv):<40} {_percentile(walls, 0.5):>7.2f} "
            f"{_percentile(walls, 0.9):>7.2f} {max(walls):>7.2f} {cpu:>10.2f}  {codes}"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
