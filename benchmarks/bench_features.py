"""Throughput, freshness, restart cost and memory of the feature stream job, against the running
Kafka, Redis and Cassandra.

    make bench-features                                                # every phase, ~10 min
    make bench-features BENCH_ARGS="--phases backlog,live --rates 1000,3000 --duration 30"
    make bench-features BENCH_ARGS="--phases restart --restart-members 100000"

Phases (``--phases``, each with its own topics and worker):

- **backlog**: a topic holds ``--events`` events of ``--users`` members before one
  ``recsys-features`` worker starts; events/s = events / (first to last consumed, from the
  worker's own metrics), with its CPU per event, then how long until Redis held every member.
- **live** (same worker): events stamped with the current time at each of ``--rates`` for
  ``--duration`` s: events/s processed, lag at the end, Redis freshness p50/p99 from the worker's
  ``recsys_features_freshness_seconds`` (store write time - event time; bucket upper bounds),
  worker CPU. Freshness is also printed per 5 s window, to show the tail after the backlog.
- **restart**: ``--restart-members`` members, one event each (every event a new member), are
  folded, then the worker is stopped (SIGTERM) and started again, and then killed (SIGKILL) and
  started again. For each start: seconds to ready, seconds from ready until a new event's
  features are in Redis, members written to the stores during recovery, resident memory.
- **soak**: ``--soak-rate`` events/s, every one from a new member, for ``--soak-duration`` s,
  with event time running from ``--soak-days`` ago to now (faster than the wall clock, so the
  member TTL of 30 days passes during the run); every 10 s the worker's resident memory, members
  held and members evicted. Flat after the TTL means bounded.

Everything it creates (topics, keyspace, Redis keys) is deleted at the end.
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
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from redis.asyncio import Redis

from recsys.catalog import GENRES
from recsys.clients.cassandra import connect_cassandra
from recsys.clients.kafka import kafka_admin, kafka_producer
from recsys.clients.redis import redis_client
from recsys.config import Settings
from recsys.events.v1 import events_pb2
from recsys.infra.cql_migrations import apply_migrations, drop_keyspace

KINDS = [
    events_pb2.EVENT_TYPE_VIEW,
    events_pb2.EVENT_TYPE_PLAY,
    events_pb2.EVENT_TYPE_PLAY,
    events_pb2.EVENT_TYPE_PAUSE,
    events_pb2.EVENT_TYPE_COMPLETE,
    events_pb2.EVENT_TYPE_SKIP,
    events_pb2.EVENT_TYPE_SEARCH,
]


SETTLE_S = 12.0  # > the worker's idle-session check (10 s)
PARTITIONS = 6


def make_event(rng: random.Random, user: str, seq: int, at_ms: int, titles: int) -> bytes:
    kind = rng.choice(KINDS)
    ev = events_pb2.Event(
        event_id=f"{user}-{seq}-{rng.getrandbits(32)}",
        event_type=kind,
        user_id=user,
        device=rng.randint(1, 5),
        country="US",
    )
    ev.occurred_at.FromMilliseconds(at_ms)
    ev.received_at.FromMilliseconds(at_ms)
    if kind == events_pb2.EVENT_TYPE_SEARCH:
        ev.search.query = rng.choice(["space", "love", "war", "cats"])
    else:
        ev.title_id = f"bt{rng.randrange(titles)}"
        if kind == events_pb2.EVENT_TYPE_PAUSE:
            ev.pause.watched_sec = 300
        elif kind == events_pb2.EVENT_TYPE_SKIP:
            ev.skip.position_sec = 120
    return ev.SerializeToString()


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Upper bound of the bucket holding quantile ``q`` of a cumulative histogram."""
    total = buckets[-1][1]
    for bound, count in buckets:
        if count >= q * total:
            return bound
    return float("inf")


async def scrape_events(port: int) -> int:
    """Records the worker has consumed (every outcome); 0 before its metrics are served."""
    async with httpx.AsyncClient() as client:
        try:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        except httpx.ConnectError:
            return 0
    return int(
        sum(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("recsys_features_events_total{")
        )
    )


async def scrape_freshness(port: int) -> list[tuple[float, float]]:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    out: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith("recsys_features_freshness_seconds_bucket{") and 'store="redis"' in line:
            le = line.split('le="')[1].split('"')[0]
            out.append((float(le), float(line.split()[-1])))
    return out


def histogram_delta(
    before: list[tuple[float, float]], after: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    earlier = dict(before)  # buckets appear with the first observation
    return [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]


async def scrape(port: int, name: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


async def wait_for_redis(redis: Redis, prefix: str, last: dict[str, int]) -> float:
    """Seconds until every member's hash shows its latest event time."""
    started = time.perf_counter()
    pending = dict(last)
    while pending:
        pipe = redis.pipeline(transaction=False)
        for user in pending:
            pipe.hget(f"{prefix}:user:{user}:rt", "_event_time_ms")
        got = await pipe.execute()
        pending = {
            u: t for (u, t), g in zip(pending.items(), got, strict=True) if not g or int(g) != t
        }
        if pending:
            if time.perf_counter() - started > 60:
                raise SystemExit(f"{len(pending)} members not in Redis after 60 s")
            await asyncio.sleep(0.2)
    return time.perf_counter() - started


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``python -m recsys_features`` (or ``$BENCH_WORKER``, e.g. a profiling wrapper)."""
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            [sys.executable, *os.environ.get("BENCH_WORKER", "-m recsys_features").split()],
            env=env,
            stdout=log_file,
            stderr=log_file,
        )


@dataclass
class Bench:
    """What every phase shares: settings, the keyspace with its titles, clients, names."""

    args: argparse.Namespace
    settings: Settings
    unique: str
    keyspace: str
    prefix: str
    redis: Redis
    producer: AIOKafkaProducer
    admin: AIOKafkaAdminClient
    rng: random.Random = field(default_factory=lambda: random.Random(1))

    async def topics(self, phase: str) -> list[str]:
        names = [f"bench.{self.unique}.{phase}.{n}" for n in ("events", "late", "sessions", "dlq")]
        await self.admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in names])
        return names

    def worker_env(self, phase: str, topics: list[str], port: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "RECSYS_FEATURES__APP_ID": f"bench-features-{self.unique}-{phase}",
                # As `recsys services` runs workers: static group membership.
                "RECSYS_FEATURES__INSTANCE_ID": f"bench-{phase}",
                "RECSYS_FEATURES__EVENTS_TOPIC": topics[0],
                "RECSYS_FEATURES__LATE_TOPIC": topics[1],
                "RECSYS_FEATURES__SESSIONS_TOPIC": topics[2],
                "RECSYS_FEATURES__DEAD_LETTER_TOPIC": topics[3],
                "RECSYS_FEATURES__PARTITIONS": str(PARTITIONS),
                "RECSYS_FEATURES__DATA_DIR": f"/tmp/bench-features-{self.unique}",
                "RECSYS_REDIS__KEY_PREFIX": f"{self.prefix}:{phase}",
                "RECSYS_CASSANDRA__KEYSPACE": self.keyspace,
                "RECSYS_METRICS__PORT": str(port),
                "RECSYS_LOG__LEVEL": os.environ.get("BENCH_LOG_LEVEL", "ERROR"),
            }
        )
        return env

    def log_path(self, phase: str) -> Path:
        return Path(f"/tmp/bench-features-{self.unique}-{phase}.log")


async def main() -> None:
    args = parse_args()
    settings = Settings()
    unique = uuid.uuid4().hex[:8]
    keyspace = f"bench_feat_{unique}"
    cassandra = connect_cassandra(settings.cassandra)
    apply_migrations(cassandra, settings.cassandra, keyspace=keyspace)
    insert = cassandra.session.prepare(
        f"INSERT INTO {keyspace}.titles (title_id, genres, runtime_min) VALUES (?, ?, ?)"
    )
    titles_rng = random.Random(1)
    for i in range(args.titles):
        genre = titles_rng.choice(GENRES)
        cassandra.session.execute(insert, (f"bt{i}", [genre], titles_rng.randint(20, 150)))
    admin = kafka_admin(settings.kafka)
    await admin.start()
    producer = kafka_producer(settings.kafka, linger_ms=20)
    await producer.start()
    bench = Bench(
        args,
        settings,
        unique,
        keyspace,
        f"rec:v1:bench:{unique}",
        redis_client(settings.redis),
        producer,
        admin,
    )
    try:
        if args.phases & {"backlog", "live"}:
            await backlog_and_live(bench)
        if "restart" in args.phases:
            await restart(bench)
        if "soak" in args.phases:
            await soak(bench)
    finally:
        await producer.stop()
        names = [t for t in await admin.list_topics() if unique in t]
        await admin.delete_topics(names)
        await admin.close()
        await bench.redis.aclose()
        await delete_keys(settings, f"{bench.prefix}:*")
        drop_keyspace(cassandra, keyspace)
        cassandra.close()


async def delete_keys(settings: Settings, pattern: str) -> None:
    """UNLINK every key matching ``pattern``, a thousand per call (hundreds of thousands of
    members' keys take longer than the serving client's 50 ms timeout allows)."""
    redis = redis_client(settings.redis, timeout_s=10.0)
    try:
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=pattern, count=10_000):
            batch.append(key)
            if len(batch) == 1_000:
                await redis.unlink(*batch)
                batch = []
        if batch:
            await redis.unlink(*batch)
    finally:
        await redis.aclose()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="backlog events")
    parser.add_argument("--users", type=int, default=2_000, help="backlog members")
    parser.add_argument("--titles", type=int, default=2_000)
    parser.add_argument(
        "--rates",
        type=lambda text: [int(r) for r in text.split(",")],
        default=[500, 1_000, 2_000, 4_000],
        help="live rates to offer one after the other, comma-separated (events/s)",
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per live rate")
    parser.add_argument("--live-users", type=int, default=20_000, help="members of live traffic")
    parser.add_argument(
        "--phases",
        type=lambda text: set(text.split(",")),
        default={"backlog", "live", "restart", "soak"},
        help="which phases to run, comma-separated: backlog,live,restart,soak",
    )
    parser.add_argument(
        "--restart-members", type=int, default=300_000, help="members in state at the restart"
    )
    parser.add_argument("--soak-rate", type=int, default=2_000, help="new members per second")
    parser.add_argument("--soak-duration", type=float, default=150.0, help="seconds of soak")
    parser.add_argument(
        "--soak-days",
        type=float,
        default=60.0,
        help="days of event time the soak covers (its events end at the current time)",
    )
    return parser.parse_args()


async def stop(proc: subprocess.Popen[bytes], how: signal.Signals = signal.SIGTERM) -> float:
    """Seconds until the worker exited after ``how`` (killed after 60 s)."""
    stopping = time.perf_counter()
    proc.send_signal(how)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        print("  worker did not stop within 60 s; killed")
        proc.kill()
        proc.wait()
    return time.perf_counter() - stopping


async def backlog_and_live(bench: Bench) -> None:
    args, rng, producer, redis = bench.args, bench.rng, bench.producer, bench.redis
    topics = await bench.topics("main")
    prefix = f"{bench.prefix}:main"
    # A backlog (also before a live-only run: the live phase starts from a busy worker).
    base_ms = int(time.time() * 1000) - 6 * 3600 * 1000
    last: dict[str, int] = {}
    per_user = max(1, args.events // args.users)
    clock = {f"b{u:05d}": base_ms + rng.randrange(60_000) for u in range(args.users)}
    for seq in range(per_user):
        for user in clock:
            clock[user] += rng.choice([5_000, 30_000, 60_000, 120_000])
            last[user] = clock[user]
            value = make_event(rng, user, seq, clock[user], args.titles)
            await producer.send(topics[0], value, key=user.encode())
    await producer.flush()
    total = per_user * args.users
    print(f"produced {total} events of {args.users} members")

    port = free_port()
    log_path = bench.log_path("main")
    proc = start_worker(bench.worker_env("main", topics, port), log_path)
    worker = psutil.Process(proc.pid)
    try:
        # The worker's own count of consumed events times the backlog (polling 2,000+ Redis
        # hashes instead would slow the machine being measured); the stores are checked after.
        first = None
        cpu_at_first = 0.0
        while (consumed := await scrape_events(port)) < total:
            if first is None and consumed:
                first = time.perf_counter()
                cpu_at_first = _cpu_s(worker)
            if proc.poll() is not None:
                raise SystemExit(f"worker exited; see {log_path}")
            await asyncio.sleep(0.05)
        elapsed = 0.0 if first is None else time.perf_counter() - first
        cpu = _cpu_s(worker) - cpu_at_first
        batches = await scrape(port, "recsys_features_batch_events_count")
        if elapsed < 0.5:  # consumed between two polls
            print(f"throughput: {total} events are too few to time; raise --events")
        else:
            print(
                f"throughput: {total} events in {elapsed:.1f} s = {total / elapsed:,.0f} "
                f"events/s in {batches:.0f} batches; "
                f"worker CPU {cpu:.1f} s ({100 * cpu / elapsed:.0f}% of one core, "
                f"{1e6 * cpu / total:.0f} us/event), machine load {os.getloadavg()[0]:.1f}"
            )
        caught_up = await wait_for_redis(redis, prefix, last)
        print(f"every member's latest event was in Redis {caught_up:.1f} s later")
        # The backlog's members (6 h old) have their sessions closed and Cassandra rows
        # written in the next seconds: let that settle so it is not timed as live traffic.
        await asyncio.sleep(SETTLE_S)

        if "live" not in args.phases:
            return
        # Live traffic at rising rates, event time = now.
        # A realistic spread: many members, each with an event every few seconds at most.
        users = [f"l{u:06d}" for u in range(args.live_users)]
        seq = 10_000
        print(f"live traffic of {args.live_users:,} members (event time = now):")
        for rate in args.rates:
            before = await scrape_freshness(port)
            processed_before = await scrape_events(port)
            cpu_before = _cpu_s(worker)
            started = time.perf_counter()
            sent = 0
            windows: list[str] = []  # freshness p99 per 5 s, to show a tail where it happens
            window_start, window_before = started, before
            while time.perf_counter() - started < args.duration:
                if time.perf_counter() - window_start >= 5.0:
                    current = await scrape_freshness(port)
                    windows.append(f"{quantile(histogram_delta(window_before, current), 0.99)}")
                    window_start, window_before = time.perf_counter(), current
                due = int((time.perf_counter() - started) * rate)
                now_ms = int(time.time() * 1000)
                while sent < due:
                    user = users[seq % len(users)]
                    value = make_event(rng, user, seq, now_ms, args.titles)
                    await producer.send(topics[0], value, key=user.encode())
                    sent += 1
                    seq += 1
                await asyncio.sleep(0.005)
            await producer.flush()
            window = time.perf_counter() - started
            processed = await scrape_events(port) - processed_before
            cpu = _cpu_s(worker) - cpu_before
            load = os.getloadavg()[0]
            lag = sent - processed
            # Let the worker drain before the next rate, then read this rate's freshness.
            deadline = time.perf_counter() + 60
            while await scrape_events(port) - processed_before < sent:
                if time.perf_counter() > deadline:
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
            after = await scrape_freshness(port)
            delta = histogram_delta(before, after)
            print(
                f"  {rate:>6,}/s offered ({sent / window:,.0f}/s sent): "
                f"{processed / window:,.0f} events/s processed, lag at the end {lag:,}; "
                f"freshness p50 <= {quantile(delta, 0.5)} s, p99 <= {quantile(delta, 0.99)} s; "
                f"worker CPU {100 * cpu / window:.0f}% of one core "
                f"({1e6 * cpu / max(1, processed):.0f} us/event), machine load {load:.1f}; "
                f"p99 per 5 s window <= {', '.join(windows)} s"
            )
    finally:
        print(f"worker stopped {await stop(proc):.1f} s after SIGTERM")


async def wait_ready(port: int, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    while await scrape_or_nan(port, "recsys_features_ready") != 1.0:
        if proc.poll() is not None:
            raise SystemExit(f"worker exited; see {log_path}")
        await asyncio.sleep(0.05)


async def scrape_or_nan(port: int, name: str) -> float:
    try:
        return await scrape(port, name)
    except httpx.HTTPError:
        return float("nan")


async def members_written(port: int) -> float:
    """Members written to both stores so far (the count of freshness observations)."""
    text = await _metrics_text(port)
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("recsys_features_freshness_seconds_count")
    )


async def _metrics_text(port: int) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{port}/metrics")).text


async def restart(bench: Bench) -> None:
    """Fold ``--restart-members`` new members, then restart the worker twice and time it."""
    args, rng, producer = bench.args, bench.rng, bench.producer
    topics = await bench.topics("restart")
    prefix = f"{bench.prefix}:restart"
    port = free_port()
    env = bench.worker_env("restart", topics, port)
    log_path = bench.log_path("restart")
    n = args.restart_members
    now_ms = int(time.time() * 1000) - 3600_000
    for i in range(n):
        user = f"r{i:07d}"
        value = make_event(rng, user, 0, now_ms + i * 3600_000 // n, args.titles)
        await producer.send(topics[0], value, key=user.encode())
    await producer.flush()
    print(f"restart: {n:,} events, each from a new member")
    proc = start_worker(env, log_path)
    worker = psutil.Process(proc.pid)
    try:
        started = time.perf_counter()
        first, cpu_at_first = None, 0.0
        while (consumed := await scrape_events(port)) < n:
            if first is None and consumed:
                first, cpu_at_first = time.perf_counter(), _cpu_s(worker)
            if proc.poll() is not None:
                raise SystemExit(f"worker exited; see {log_path}")
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - (first or started)
        cpu = _cpu_s(worker) - cpu_at_first
        print(
            f"  folded {n:,} new members in {elapsed:.1f} s = {n / elapsed:,.0f} events/s; "
            f"worker CPU {1e6 * cpu / n:.0f} us/event, machine load {os.getloadavg()[0]:.1f}"
        )
        # Until both stores hold everyone (so a graceful restart has nothing left to write).
        while await members_written(port) < 2 * n:
            if proc.poll() is not None:
                raise SystemExit(f"worker exited; see {log_path}")
            await asyncio.sleep(0.5)
        print(f"  both stores held every member {time.perf_counter() - started:.1f} s after start")
    except BaseException:
        await stop(proc, signal.SIGKILL)
        raise
    for how in (signal.SIGTERM, signal.SIGKILL):
        stopped = await stop(proc, how)
        proc = start_worker(env, log_path)
        worker = psutil.Process(proc.pid)
        try:
            started = time.perf_counter()
            await wait_ready(port, proc, log_path)
            ready_s = time.perf_counter() - started
            recovered = await scrape_or_nan(port, "recsys_features_members")
            written = await members_written(port)
            user = f"fresh-{how.name}"
            at_ms = int(time.time() * 1000)
            sent = time.perf_counter()
            await producer.send_and_wait(
                topics[0], make_event(rng, user, 1, at_ms, args.titles), key=user.encode()
            )
            key = f"{prefix}:user:{user}:rt"
            while await bench.redis.hget(key, "_event_time_ms") != str(at_ms).encode():
                if time.perf_counter() - sent > 120:
                    raise SystemExit(f"the new event was not in Redis after 120 s; {log_path}")
                await asyncio.sleep(0.02)
            visible_s = time.perf_counter() - sent
            rss = worker.memory_info().rss / 2**20
            print(
                f"  after {how.name} (stopped in {stopped:.1f} s): ready {ready_s:.1f} s after "
                f"start with {recovered:,.0f} members; a new event's features in Redis "
                f"{visible_s:.2f} s after it was sent; {written:,.0f} member writes during "
                f"recovery; RSS {rss:,.0f} MiB"
            )
        except BaseException:
            await stop(proc, signal.SIGKILL)
            raise
    await stop(proc)


async def soak(bench: Bench) -> None:
    """Ever-new members while event time runs through the member TTL: memory must flatten."""
    args, rng, producer = bench.args, bench.rng, bench.producer
    topics = await bench.topics("soak")
    port = free_port()
    log_path = bench.log_path("soak")
    proc = start_worker(bench.worker_env("soak", topics, port), log_path)
    worker = psutil.Process(proc.pid)
    span_ms = args.soak_days * 86_400_000
    speed = span_ms / (args.soak_duration * 1000)  # event-time ms per wall ms
    print(
        f"soak: {args.soak_rate:,} new members/s for {args.soak_duration:.0f} s, event time "
        f"from {args.soak_days:.0f} days ago to now ({speed:,.0f}x the wall clock)"
    )
    try:
        await wait_ready(port, proc, log_path)
        start_ms = time.time() * 1000 - span_ms
        started = time.perf_counter()
        sent = 0
        next_report = 10.0
        while (elapsed := time.perf_counter() - started) < args.soak_duration:
            due = int(elapsed * args.soak_rate)
            at_ms = int(start_ms + elapsed * 1000 * speed)
            while sent < due:
                user = f"s{sent:08d}"
                await producer.send(
                    topics[0], make_event(rng, user, 0, at_ms, args.titles), key=user.encode()
                )
                sent += 1
            if elapsed >= next_report:
                days_ago = (time.time() * 1000 - at_ms) / 86_400_000
                members = await scrape_or_nan(port, "recsys_features_members")
                evicted = await scrape_or_nan(port, "recsys_features_members_evicted_total")
                print(
                    f"  {elapsed:5.0f} s: event time {days_ago:5.1f} days ago, "
                    f"{sent:>9,} members sent, {members:>9,.0f} held, {evicted:>9,.0f} evicted, "
                    f"RSS {worker.memory_info().rss / 2**20:6,.0f} MiB"
                )
                next_report += 10.0
            await asyncio.sleep(0.005)
        await producer.flush()
    finally:
        await stop(proc)


if __name__ == "__main__":
    asyncio.run(main())
