"""Throughput and latency of the ingest service against the running Kafka.

    make bench-ingest                                   # 20 s, 16 in flight, batches of 100
    .venv/bin/python benchmarks/bench_ingest.py --duration 60 --concurrency 16 --profile out.prof
    .venv/bin/python benchmarks/bench_ingest.py --validation-only    # no Kafka needed

First, in this process: how long checking a 500-event batch takes and how long the event loop
waits meanwhile (a 0.5 ms timer probes it), checked in one go, in chunks with a yield between
them (what the service does) and in a worker thread.

Then creates a unique 6-partition topic, starts ``python -m recsys_ingest`` on a free port as a
subprocess (so server and load generator are separate processes, as in production), waits for
``/readyz``, then keeps ``--concurrency`` requests of ``--batch`` valid events in flight for
``--duration`` seconds with pre-serialized bodies, prints accepted events/s, requests/s, request
latency percentiles and the latency of ``GET /healthz`` probes sent meanwhile (the event loop's
responsiveness under load), stops the service (SIGTERM, graceful) and deletes the topic.
Settings (Kafka address, ...) come from the usual RECSYS_ environment variables.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import psutil
import uvloop
from aiokafka.admin import NewTopic

from recsys.catalog import DEVICES
from recsys.clients.kafka import kafka_admin
from recsys.config import Settings
from recsys_ingest.batch import CheckedBatch, check_batch, check_batch_async

# httpcore tries `import sniffio` on every request and, sniffio not being installed, scans
# sys.path each time: about 2.5 ms of client CPU per request here. Recording the module as
# absent makes that failed import instant (httpcore then assumes asyncio, as it would anyway).
sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

API_KEY = "bench-key"
COUNTRIES = ("US", "GB", "DE", "FR", "BR", "IN", "JP", "CA")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _event(rng: random.Random, user: str, occurred_ms: int) -> dict[str, object]:
    base: dict[str, object] = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "user_id": user,
        "occurred_at": occurred_ms,
        "device": rng.choice(DEVICES),
        "country": rng.choice(COUNTRIES),
        "app_version": "5.2.1",
    }
    title = f"tt{rng.randrange(15_000):07d}"
    kind = rng.random()
    if kind < 0.35:
        return {**base, "event_type": "impression", "row": "top_picks", "position": 2,
                "title_ids": [f"tt{rng.randrange(15_000):07d}" for _ in range(8)]}  # fmt: skip
    if kind < 0.55:
        return {**base, "event_type": "view", "title_id": title, "page": "home"}
    if kind < 0.75:
        return {**base, "event_type": "play", "title_id": title, "position_sec": 0.0}
    if kind < 0.85:
        return {**base, "event_type": "pause", "title_id": title, "position_sec": 1201.5,
                "watched_sec": 1201.5}  # fmt: skip
    if kind < 0.92:
        return {**base, "event_type": "complete", "title_id": title, "position_sec": 5400.0,
                "watched_sec": 5000.0}  # fmt: skip
    if kind < 0.96:
        return {**base, "event_type": "rate", "title_id": title, "rating": rng.randint(1, 5)}
    return {**base, "event_type": "search", "query": "space documentary"}


def make_bodies(count: int, batch: int, users: int, seed: int = 7) -> list[bytes]:
    """Pre-serialized request bodies (JSON encoding is the client's cost, not the server's)."""
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    return [
        orjson.dumps(
            {
                "events": [
                    _event(rng, f"u{rng.randrange(users)}", now_ms - rng.randrange(60_000))
                    for _ in range(batch)
                ]
            }
        )
        for _ in range(count)
    ]


# --- validation of a max-size batch, in process ------------------------------------------------

_PROBE_S = 0.0005


async def _probe_loop(lags: list[float], stop: asyncio.Event) -> None:
    """How late a 0.5 ms timer fires: the longest the loop could not serve anything else."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(_PROBE_S)
        lags.append(max(0.0, time.perf_counter() - t0 - _PROBE_S))


async def _check_all(mode: str, docs: list[list[object]]) -> tuple[list[float], list[float], float]:
    """Check every batch back to back in ``mode``; per-batch wall times, loop lags, CPU/batch."""

    async def check(events: list[object]) -> CheckedBatch:
        if mode == "inline":
            return check_batch(events, max_event_bytes=8192)
        if mode == "thread":
            return await asyncio.to_thread(check_batch, events, max_event_bytes=8192)
        return await check_batch_async(events, max_event_bytes=8192, chunk=int(mode))

    for events in docs[:3]:  # warm up (first calls build validators, caches)
        await check(events)
    lags: list[float] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe_loop(lags, stop))
    await asyncio.sleep(0.01)
    walls: list[float] = []
    cpu0 = time.process_time()
    for events in docs:
        await asyncio.sleep(0)  # between two requests the loop runs other tasks in every mode
        t0 = time.perf_counter()
        checked = await check(events)
        walls.append(time.perf_counter() - t0)
        assert checked.accepted == len(events)
    cpu = (time.process_time() - cpu0) / len(docs)
    stop.set()
    await probe
    return walls, lags, cpu


def validation_figures(batch: int, rounds: int) -> None:
    docs = [orjson.loads(b)["events"] for b in make_bodies(rounds, batch, 10_000, seed=11)]
    print(
        f"\nvalidation of a {batch}-event batch ({rounds} batches back to back; loop lag = how "
        f"late a {_PROBE_S * 1000:g} ms timer fired meanwhile)"
    )
    print("  mode              per batch ms p50 / p99   CPU ms per batch   loop lag ms p99 / max")
    for mode, label in [
        ("inline", "one go"),
        ("32", "chunks of 32"),
        ("64", "chunks of 64"),
        ("128", "chunks of 128"),
        ("thread", "worker thread"),
    ]:
        walls, lags, cpu = uvloop.run(_check_all(mode, docs))
        walls.sort()
        lags.sort()
        print(
            f"  {label:<17} {_percentile(walls, 0.5) * 1000:>6.2f} / "
            f"{_percentile(walls, 0.99) * 1000:<6.2f}         {cpu * 1000:>6.2f}"
            f"             {_percentile(lags, 0.99) * 1000:>6.2f} / {lags[-1] * 1000:.2f}"
        )


# --- load against the running service -----------------------------------------------------------


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: int = 0
    transport_errors: int = 0
    healthz: list[float] = field(default_factory=list)  # GET /healthz latencies meanwhile


async def _worker(
    client: httpx.AsyncClient, bodies: list[bytes], offset: int, stop_at: float, tally: Tally
) -> None:
    i = offset
    while time.perf_counter() < stop_at:
        body = bodies[i % len(bodies)]
        i += 1
        t0 = time.perf_counter()
        try:
            response = await client.post("/v1/events", content=body)
        except httpx.HTTPError:
            tally.transport_errors += 1
            continue
        tally.latencies.append(time.perf_counter() - t0)
        tally.statuses[response.status_code] += 1
        if response.status_code == 202:
            tally.accepted += orjson.loads(response.content)["accepted"]


async def _raw_worker(
    host: str, port: int, bodies: list[bytes], offset: int, stop_at: float, tally: Tally
) -> None:
    """HTTP/1.1 keep-alive on a bare asyncio stream: almost no client CPU (see --client)."""
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {API_KEY}\r\nContent-Length: "
    ).encode()
    i = offset
    try:
        while time.perf_counter() < stop_at:
            body = bodies[i % len(bodies)]
            i += 1
            t0 = time.perf_counter()
            writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
            status_line, _, headers = (await reader.readuntil(b"\r\n\r\n")).partition(b"\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in headers.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            payload = await reader.readexactly(length)
            tally.latencies.append(time.perf_counter() - t0)
            status = int(status_line.split()[1])
            tally.statuses[status] += 1
            if status == 202:
                tally.accepted += orjson.loads(payload)["accepted"]
    except (OSError, asyncio.IncompleteReadError):
        tally.transport_errors += 1
    finally:
        writer.close()


async def _healthz_probe(url: str, stop_at: float, tally: Tally) -> None:
    """GET /healthz every 50 ms on a connection of its own."""
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                response = await http.get("/healthz")
            except httpx.HTTPError:
                tally.transport_errors += 1
            else:
                if response.status_code == 200:
                    tally.healthz.append(time.perf_counter() - t0)
            await asyncio.sleep(0.05)


async def drive(
    url: str, bodies: list[bytes], concurrency: int, seconds: float, client: str = "httpx"
) -> Tally:
    tally = Tally()
    step = max(1, len(bodies) // concurrency)
    if client == "raw":
        parts = httpx.URL(url)
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(
            _healthz_probe(url, stop_at, tally),
            *(
                _raw_worker(parts.host, parts.port or 80, bodies, n * step, stop_at, tally)
                for n in range(concurrency)
            ),
        )
        return tally
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=30.0
    ) as http:
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(
            _healthz_probe(url, stop_at, tally),
            *(_worker(http, bodies, n * step, stop_at, tally) for n in range(concurrency)),
        )
    return tally


async def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"ingest exited with {proc.returncode} before it was ready")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"ingest was not ready within {timeout_s:.0f}s")


async def _topic(settings: Settings, name: str, partitions: int, *, create: bool) -> None:
    admin = kafka_admin(settings.kafka)
    await admin.start()
    try:
        if create:
            await admin.create_topics([NewTopic(name, partitions, 1)])
        else:
            await admin.delete_topics([name])
    finally:
        await admin.close()


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def _report(tally: Tally, seconds: float, args: argparse.Namespace, cpu: dict[str, float]) -> None:
    lat = sorted(tally.latencies)
    requests = len(lat)
    errors = sum(n for status, n in tally.statuses.items() if status != 202)
    ms = [f"{_percentile(lat, q) * 1000:.1f}" for q in (0.5, 0.9, 0.99)]
    print(
        f"\ningest benchmark: {seconds:.1f} s, concurrency {args.concurrency}, "
        f"batches of {args.batch} events, {args.partitions} partitions, {args.client} client"
    )
    print(f"  accepted events/s   {tally.accepted / seconds:,.0f}")
    print(f"  requests/s          {requests / seconds:,.1f}")
    print(f"  latency ms          p50 {ms[0]}  p90 {ms[1]}  p99 {ms[2]}  max {lat[-1] * 1000:.1f}")
    probes = sorted(tally.healthz)
    if probes:
        hz = [f"{_percentile(probes, q) * 1000:.1f}" for q in (0.5, 0.9, 0.99)]
        print(
            f"  /healthz ms         p50 {hz[0]}  p90 {hz[1]}  p99 {hz[2]}  "
            f"max {probes[-1] * 1000:.1f} ({len(probes)} probes)"
        )
    print(f"  errors              {errors} non-202, {tally.transport_errors} transport")
    print(f"  statuses            {dict(tally.statuses)}")
    print("  CPU (% of one core) " + ", ".join(f"{k} {v:.0f}%" for k, v in cpu.items()))


def _kafka_process(settings: Settings) -> psutil.Process | None:
    record = settings.infra.state_dir / "kafka" / "process.json"
    try:
        return psutil.Process(orjson.loads(record.read_bytes())["pid"])
    except (OSError, ValueError, KeyError, psutil.Error):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load not counted")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--batch", type=int, default=100, help="events per request")
    parser.add_argument("--users", type=int, default=10_000, help="distinct user_ids")
    parser.add_argument("--partitions", type=int, default=6, help="partitions of the topic")
    parser.add_argument("--bodies", type=int, default=400, help="distinct request bodies")
    parser.add_argument(
        "--client",
        choices=("httpx", "raw"),
        default="httpx",
        help="httpx.AsyncClient (default), or a bare asyncio HTTP/1.1 client that leaves the "
        "CPU to the service (httpx costs a few ms of CPU per 20 kB request)",
    )
    parser.add_argument("--profile", type=Path, help="run the service under cProfile, dump here")
    parser.add_argument(
        "--validation-batch", type=int, default=500, help="events per batch of the validation part"
    )
    parser.add_argument(
        "--validation-rounds", type=int, default=60, help="batches of the validation part (0: skip)"
    )
    parser.add_argument(
        "--validation-only", action="store_true", help="print the validation figures and stop"
    )
    args = parser.parse_args()

    if args.validation_rounds > 0:
        validation_figures(args.validation_batch, args.validation_rounds)
    if args.validation_only:
        return

    settings = Settings()
    topic = f"bench.ingest.{uuid.uuid4().hex[:10]}"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    bodies = make_bodies(args.bodies, args.batch, args.users)

    asyncio.run(_topic(settings, topic, args.partitions, create=True))
    env = {
        **os.environ,
        "RECSYS_INGEST__HOST": "127.0.0.1",
        "RECSYS_INGEST__PORT": str(port),
        "RECSYS_INGEST__TOPIC": topic,
        "RECSYS_INGEST__API_KEYS": API_KEY,
        "RECSYS_LOG__LEVEL": os.environ.get("RECSYS_LOG__LEVEL", "WARNING"),
    }
    command = [sys.executable]
    if args.profile:
        command += ["-m", "cProfile", "-o", str(args.profile)]
    command += ["-m", "recsys_ingest"]
    proc = subprocess.Popen(command, env=env)
    try:
        uvloop.run(_wait_ready(url, proc, 60.0))
        print(f"ingest pid {proc.pid} on {url}, topic {topic}; warming up {args.warmup:g} s")
        if args.warmup > 0:
            uvloop.run(drive(url, bodies, args.concurrency, args.warmup, args.client))
        server, kafka, me = psutil.Process(proc.pid), _kafka_process(settings), psutil.Process()
        watched = {"ingest": server, "bench client": me} | ({"kafka": kafka} if kafka else {})
        before = {name: sum(p.cpu_times()[:2]) for name, p in watched.items()}
        t0 = time.perf_counter()
        tally = uvloop.run(drive(url, bodies, args.concurrency, args.duration, args.client))
        seconds = time.perf_counter() - t0
        cpu = {
            name: (sum(p.cpu_times()[:2]) - before[name]) / seconds * 100
            for name, p in watched.items()
        }
        _report(tally, seconds, args, cpu)
    finally:
        # SIGINT under cProfile: uvicorn re-raises the signal after its graceful shutdown, and only
        # KeyboardInterrupt (not a SIGTERM kill) lets cProfile write its file.
        proc.send_signal(signal.SIGINT if args.profile else signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        asyncio.run(_topic(settings, topic, args.partitions, create=False))
    if args.profile:
        print(f"profile written to {args.profile} (python -m pstats {args.profile})")


if __name__ == "__main__":
    main()
