"""Throughput and freshness of the feature stream job against the running Kafka/Redis/Cassandra.

    make bench-features                                                # 50k backlog, 4 rates
    make bench-features BENCH_ARGS="--events 100000 --rates 1000,3000 --duration 30"

Phase 1 (backlog): a unique topic is filled with ``--events`` events of ``--users`` members
before one ``recsys-features`` worker starts; events/s = events / (time from the first stored
member to the last member's last event stored), with the worker's CPU per event. Phase 2 (live):
events stamped with the current time are offered at each of ``--rates`` for ``--duration`` s;
per rate it prints the events/s the worker processed, the lag left at the end of the window and
the Redis freshness p50/p99 from the worker's ``recsys_features_freshness_seconds`` histogram
(store write time - event time; bucket upper bounds). Everything it creates (topics, keyspace,
Redis keys) is deleted at the end, and the worker's stop time after SIGTERM is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil
from aiokafka.admin import NewTopic
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


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--titles", type=int, default=2_000)
    parser.add_argument(
        "--rates",
        type=lambda text: [int(r) for r in text.split(",")],
        default=[500, 1_000, 2_000, 4_000],
        help="live rates to offer one after the other, comma-separated (events/s)",
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per live rate")
    parser.add_argument("--live-users", type=int, default=20_000, help="members of live traffic")
    args = parser.parse_args()

    settings = Settings()
    unique = uuid.uuid4().hex[:8]
    keyspace, prefix = f"bench_feat_{unique}", f"rec:v1:bench:{unique}"
    topics = [f"bench.{unique}.{n}" for n in ("events", "late", "sessions")]
    partitions = 6
    cassandra = connect_cassandra(settings.cassandra)
    apply_migrations(cassandra, settings.cassandra, keyspace=keyspace)
    insert = cassandra.session.prepare(
        f"INSERT INTO {keyspace}.titles (title_id, genres, runtime_min) VALUES (?, ?, ?)"
    )
    rng = random.Random(1)
    for i in range(args.titles):
        cassandra.session.execute(insert, (f"bt{i}", [rng.choice(GENRES)], rng.randint(20, 150)))
    admin = kafka_admin(settings.kafka)
    await admin.start()
    await admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    redis = redis_client(settings.redis)
    producer = kafka_producer(settings.kafka, linger_ms=20)
    await producer.start()

    # Phase 1: a backlog.
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
    log_path = Path(f"/tmp/bench-features-{unique}.log")
    env = dict(os.environ)
    env.update(
        {
            "RECSYS_FEATURES__APP_ID": f"bench-features-{unique}",
            "RECSYS_FEATURES__EVENTS_TOPIC": topics[0],
            "RECSYS_FEATURES__LATE_TOPIC": topics[1],
            "RECSYS_FEATURES__SESSIONS_TOPIC": topics[2],
            "RECSYS_FEATURES__PARTITIONS": str(partitions),
            "RECSYS_FEATURES__DATA_DIR": f"/tmp/bench-features-{unique}",
            "RECSYS_REDIS__KEY_PREFIX": prefix,
            "RECSYS_CASSANDRA__KEYSPACE": keyspace,
            "RECSYS_METRICS__PORT": str(port),
            "RECSYS_LOG__LEVEL": "ERROR",
        }
    )
    proc = start_worker(env, log_path)
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

        # Phase 2: live traffic at rising rates, event time = now.
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
            while time.perf_counter() - started < args.duration:
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
            earlier = dict(before)  # buckets appear with the first observation
            delta = [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]
            print(
                f"  {rate:>6,}/s offered ({sent / window:,.0f}/s sent): "
                f"{processed / window:,.0f} events/s processed, lag at the end {lag:,}; "
                f"freshness p50 <= {quantile(delta, 0.5)} s, p99 <= {quantile(delta, 0.99)} s; "
                f"worker CPU {100 * cpu / window:.0f}% of one core "
                f"({1e6 * cpu / max(1, processed):.0f} us/event), machine load {load:.1f}"
            )
    finally:
        stopping = time.perf_counter()
        proc.terminate()
        try:
            proc.wait(timeout=30)
            print(f"worker stopped {time.perf_counter() - stopping:.1f} s after SIGTERM")
        except subprocess.TimeoutExpired:
            print("worker did not stop within 30 s of SIGTERM; killed")
            proc.kill()
            proc.wait()
        await producer.stop()
        names = [t for t in await admin.list_topics() if unique in t]
        await admin.delete_topics(names)
        await admin.close()
        async for key in redis.scan_iter(match=f"{prefix}:*"):
            await redis.delete(key)
        await redis.aclose()
        drop_keyspace(cassandra, keyspace)
        cassandra.close()


if __name__ == "__main__":
    asyncio.run(main())
