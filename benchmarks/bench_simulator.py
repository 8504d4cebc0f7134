"""Rate accuracy, client-side latency and CPU cost of the traffic simulator, against a stub ingest.

    .venv/bin/python benchmarks/bench_simulator.py                       # 500, 1000, 3000 events/s
    .venv/bin/python benchmarks/bench_simulator.py --rates 2000 --duration 60

Generates a world in memory (``--titles``/``--members``, default the full 15k x 100k), starts
the stub ingest of tests/stub_ingest.py (contract checks, no Kafka) with uvicorn on a free port
as a subprocess, runs the simulator loop for ``--duration`` seconds at each rate and prints the
target and achieved rates, the answers, per-batch latency percentiles and the CPU time the
simulator process used; then stops the stub. The stub stands in for the ingest service so the
figures are the client's own; bench_ingest.py measures the service.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from recsys.clients.ingest import IngestClient
from recsys_datagen.reporting import simulation_lines
from recsys_datagen.sender import BatchSender
from recsys_datagen.sim_world import SimWorld
from recsys_datagen.simulator import SimulationConfig, SimulationReport, run_simulation
from recsys_datagen.traffic import TrafficModel
from recsys_datagen.world import WorldSpec, generate_world

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_stub(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.stub_ingest:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the stub ingest did not start")


async def _run(
    model: TrafficModel, url: str, config: SimulationConfig, concurrency: int
) -> SimulationReport:
    async with IngestClient(url, api_key="local-dev-key", max_connections=concurrency) as client:
        return await run_simulation(model, BatchSender(client, concurrency=concurrency), config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[500.0, 1000.0, 3000.0])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--titles", type=int, default=15_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--time-scale", type=float, default=60.0)
    args = parser.parse_args()

    t0 = time.perf_counter()
    world = generate_world(WorldSpec(seed=1, titles=args.titles, members=args.members))
    sim_world = SimWorld.from_tables(world.titles, world.members)
    print(f"world {args.titles} x {args.members} ready in {time.perf_counter() - t0:.1f} s")

    port = _free_port()
    stub = _start_stub(port)
    try:
        for i, rate in enumerate(args.rates):
            model = TrafficModel(
                sim_world, np.random.default_rng(100 + i), time_scale=args.time_scale
            )
            t0 = time.perf_counter()
            warm = model.warm_start(time.time_ns() // 1_000_000, rate)
            warm_s = time.perf_counter() - t0
            config = SimulationConfig(rate=rate, duration_s=args.duration)
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            report = asyncio.run(_run(model, f"http://127.0.0.1:{port}", config, args.concurrency))
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            report.warm_sessions = warm
            cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
            print(
                f"\n=== {rate:g} events/s for {args.duration:g} s (warm start {warm_s:.1f} s) ==="
            )
            for line in simulation_lines(report):
                print(line)
            share = 100 * cpu / report.pacing_s
            print(f"  cpu        {cpu:.1f} s of simulator CPU = {share:.0f} % of a core")
    finally:
        stub.send_signal(signal.SIGTERM)
        stub.wait(timeout=10)


if __name__ == "__main__":
    main()
