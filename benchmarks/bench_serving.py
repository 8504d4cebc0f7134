"""Latency and throughput of the three gRPC serving services (featurestore, candidates, ranker),
each started by this script as its own process, against the running Redis and Cassandra.

    make bench-serving                                   # both catalogs, 10 s per scenario
    make bench-serving BENCH_ARGS="--duration 30 --concurrency 1,8 --catalog 100k"

Per catalog (``--catalog default|100k|both``) it starts ``recsys-featurestore``,
``recsys-candidates`` and ``recsys-ranker`` (beside this Python) on free ports with
``RECSYS_MODELS__ROOT`` set to that catalog's registry, waits until the ``grpc.health.v1`` Check
says SERVING, and SIGTERMs them at the end (logs in a temporary directory; their tail is printed
if one dies). Redis, Cassandra, keyspace and key prefix come from the usual RECSYS_ settings.

- **default**: the registry at ``Settings().models.root`` as ``make up`` left it.
- **100k**: a temporary registry published through the registry API: a copy of the current
  ``ranker``; a ``two_tower`` with the current user tower and feature spec but a FAISS index of
  100,000 titles (the real titles' vectors plus random unit vectors, fixed seed, for generated
  ids ``bench-000000``...); a ``title_features`` table of 100,000 rows (the real rows plus rows
  whose every column is a value of a random real row).

Members come from Redis (``<prefix>:user:*:rt``, up to ``--members``; synthetic ids if none).
The features of ``--prepared`` of them are fetched once from the featurestore, and their 500
candidates once from the candidates service; the requests are built before measuring. Then, one
scenario at a time, one asyncio client (grpc.aio) keeps ``--concurrency`` calls in flight for
``--duration`` s after ``--warmup`` s:

- featurestore: GetUserFeatures (the next of the ``--members``) then GetTitleFeatures (a
  prepared member's 500 candidates); each method and the pair. Cycling through ~1,000 members,
  most reads miss the service's in-process cache and go to Redis and Cassandra; ``--members 16``
  measures the cached path instead;
- candidates: GetCandidates (limit 500) with a prepared member's features and country;
- ranker: Rank of a prepared member's 500 candidates with their retrieval scores.

Client time is measured around each call; server time is the handler's own time, the trailing
metadata ``x-server-time-ms`` (recsys.serving.handler), so network and client queueing are
outside it. Targets (server p99) are printed beside the results.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recsys.candidates.v1 import candidates_pb2, candidates_pb2_grpc
from recsys.clients.redis import redis_client
from recsys.config import Settings
from recsys.featurestore.v1 import featurestore_pb2, featurestore_pb2_grpc
from recsys.infra.server import free_ports
from recsys.models.registry import ModelRegistry, ModelVersion, RegistryError
from recsys.ranker.v1 import ranker_pb2, ranker_pb2_grpc
from recsys.serving.handler import SERVER_TIME_KEY

STUBS: dict[str, Any] = {
    "featurestore": featurestore_pb2_grpc.FeatureStoreServiceStub,
    "candidates": candidates_pb2_grpc.CandidatesServiceStub,
    "ranker": ranker_pb2_grpc.RankerServiceStub,
}
MODELS = ("two_tower", "ranker", "title_features")
TITLES = 500  # titles per GetTitleFeatures, candidates per GetCandidates and per Rank
CALL_TIMEOUT_S = 5.0
USER, TITLE = "GetUserFeatures", "GetTitleFeatures (500 titles)"
PAIR = "user features + 500 title features"
CANDIDATES = "GetCandidates (top 500)"
RANK = "Rank (500 candidates)"
# Server p99 targets (ms): (row, target, the catalog it applies to or None for every one).
TARGETS = [(PAIR, 2.0, None), (CANDIDATES, 3.0, "100k"), (RANK, 5.0, None)]


class BenchError(Exception):
    """Why the benchmark cannot go on, in one line (plus a log tail); printed without a trace."""


@dataclass
class Stats:
    client_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class Service:
    name: str
    address: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(f"    {line}" for line in text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"{self.name} exited {self.process.returncode}:\n{self.tail()}")


def start_service(name: str, root: Path, log_dir: Path) -> Service:
    (port, metrics_port), section = free_ports(2), name.upper()
    env = {
        **os.environ,
        f"RECSYS_{section}__PORT": str(port),
        f"RECSYS_{section}__METRICS_PORT": str(metrics_port),
        "RECSYS_MODELS__ROOT": str(root),
    }
    log = log_dir / f"{name}-{port}.log"
    script = Path(sys.executable).parent / f"recsys-{name}"
    with log.open("wb") as out:
        process = subprocess.Popen([str(script)], env=env, stdout=out, stderr=subprocess.STDOUT)
    return Service(name, f"127.0.0.1:{port}", process, log)


async def wait_serving(service: Service, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(service.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            service.check_alive()
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
    raise BenchError(f"{service.name} not SERVING after {timeout_s:.0f} s:\n{service.tail()}")


def stop_services(services: list[Service]) -> None:
    for service in services:
        if service.process.poll() is None:
            service.process.send_signal(signal.SIGTERM)
    for service in services:
        try:
            service.process.wait(30)
        except subprocess.TimeoutExpired:
            print(f"  {service.name} did not stop within 30 s of SIGTERM; killed")
            service.process.kill()
            service.process.wait()


def current(registry: ModelRegistry, name: str) -> ModelVersion:
    try:
        found = registry.current(name, verify=False)
    except RegistryError as exc:
        raise BenchError(f"{exc}: run make up first") from None
    if found is None:
        raise BenchError(f"no current {name} in {registry.root}: run make up first")
    return found


def publish(
    registry: ModelRegistry, name: str, write: Callable[[Path], None], manifest: Any
) -> None:
    with registry.new_version(name) as staging:
        write(staging.path)
        staging.manifest = manifest
    assert staging.version is not None
    registry.promote(name, staging.version)


def build_100k(source: ModelRegistry, root: Path, titles: int, seed: int) -> None:
    """The 100k catalog in a new registry at ``root`` (see the module docstring)."""
    import faiss
    import pyarrow as pa  # type: ignore[import-untyped]

    from recsys.features.registry import Dtype
    from recsys.features.title_table import TITLE_FEATURES as FEATURES
    from recsys.features.title_table import TitleFeatureTable, publish_title_features
    from recsys.models.inference import INDEX_FILE, TITLE_IDS_FILE, USER_TOWER_FILE
    from recsys.models.vectorize import SPEC_FILE

    rng = np.random.default_rng(seed)
    target = ModelRegistry(root)
    ranker = current(source, "ranker")

    def copy_ranker(path: Path) -> None:
        for name in ranker.manifest.files:
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ranker.path / name, path / name)

    publish(target, "ranker", copy_ranker, ranker.manifest.model_copy(update={"created_at": None}))

    tower = current(source, "two_tower")
    ids: list[str] = json.loads(tower.file(TITLE_IDS_FILE).read_bytes())
    real = faiss.read_index(str(tower.file(INDEX_FILE)))
    ids += [f"bench-{i:06d}" for i in range(titles - len(ids))]
    vectors = rng.standard_normal((len(ids) - real.ntotal, real.d)).astype(np.float32)
    index = faiss.IndexFlatIP(real.d)
    index.add(np.ascontiguousarray(real.reconstruct_n(0, real.ntotal), np.float32))
    index.add(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))

    def write_tower(path: Path) -> None:
        for name in (USER_TOWER_FILE, SPEC_FILE):
            shutil.copyfile(tower.file(name), path / name)
        faiss.write_index(index, str(path / INDEX_FILE))
        (path / TITLE_IDS_FILE).write_bytes(json.dumps(ids).encode())

    params = {**tower.manifest.params, "bench_serving": f"{len(ids)} titles, seed {seed}"}
    update = {"created_at": None, "params": params, "metrics": {"titles": len(ids)}}
    publish(target, "two_tower", write_tower, tower.manifest.model_copy(update=update))

    # The real rows, then one per index title the table lacks: each column a random real row's.
    features = current(source, "title_features")
    table = TitleFeatureTable.load(features)
    new_ids = [t for t in ids if table.row(t) < 0]
    kinds = {Dtype.INT64: pa.int64(), Dtype.FLOAT64: pa.float64(), Dtype.STRING: pa.string()}
    kinds[Dtype.STRING_LIST] = pa.list_(pa.string())
    columns: dict[str, Any] = {"title_id": pa.array([*table.title_ids, *new_ids], pa.string())}
    for feature in FEATURES:
        values = table.columns[feature.name]
        values = values.tolist() if isinstance(values, np.ndarray) else values
        picks = rng.integers(0, len(table), len(new_ids)).tolist()
        columns[feature.name] = pa.array(values + [values[i] for i in picks], kinds[feature.dtype])
    day = features.manifest.training_data.get("feature_date")
    feature_date = date.fromisoformat(day) if isinstance(day, str) else date.today()
    publish_title_features(target, pa.table(columns), feature_date)


async def find_members(settings: Settings, wanted: int) -> tuple[list[str], bool]:
    """Up to ``wanted`` member ids that have real-time features in Redis (else synthetic)."""
    prefix = settings.redis.key_prefix
    redis = redis_client(settings.redis, timeout_s=10.0)
    found: list[str] = []
    try:
        async for key in redis.scan_iter(match=f"{prefix}:user:*:rt", count=1000):
            found.append(key.decode()[len(prefix) + len(":user:") : -len(":rt")])
            if len(found) >= wanted:
                break
    finally:
        await redis.aclose()
    if found:
        return sorted(found), True
    return [f"bench-member-{i:04d}" for i in range(wanted)], False


async def timed(call: Any, stats: Stats | None) -> float | None:
    """Await one unary call and return the server's ms (None on an error); recorded into
    ``stats`` with the client's ms unless None (warm-up)."""
    started = time.perf_counter()
    try:
        await call
        trailing = await call.trailing_metadata()
    except grpc.aio.AioRpcError as exc:
        if stats is not None:
            stats.errors[exc.code().name] += 1
        return None
    server = float(trailing.get(SERVER_TIME_KEY) or "nan")
    if stats is not None:
        stats.client_ms.append((time.perf_counter() - started) * 1000)
        stats.server_ms.append(server)
    return server


Step = Callable[[int, dict[str, Stats] | None], Awaitable[None]]


async def drive(step: Step, args: argparse.Namespace, rows: list[str]) -> dict[str, Any]:
    """Warm up, then ``--concurrency`` loops of ``step`` for ``--duration`` s."""
    counter = itertools.count()

    async def loop(until: float, stats: dict[str, Stats] | None) -> None:
        while time.perf_counter() < until:
            await step(next(counter), stats)

    async def run(seconds: float, stats: dict[str, Stats] | None) -> float:
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(*(loop(until, stats) for _ in range(args.concurrency)))
        return time.perf_counter() - started

    await run(args.warmup, None)
    stats = {row: Stats() for row in rows}
    elapsed = await run(args.duration, stats)
    return {row: (s, elapsed) for row, s in stats.items()}


@dataclass
class Requests:
    """Built once before measuring: per call, only a request from these lists is sent."""

    users: list[featurestore_pb2.GetUserFeaturesRequest] = field(default_factory=list)
    titles: list[featurestore_pb2.GetTitleFeaturesRequest] = field(default_factory=list)
    candidates: list[candidates_pb2.GetCandidatesRequest] = field(default_factory=list)
    rank: list[ranker_pb2.RankRequest] = field(default_factory=list)


async def prepare(stubs: dict[str, Any], users: list[str], count: int, country: str) -> Requests:
    """The first ``count`` members' features (fetched once) and 500 candidates (likewise)."""
    out = Requests([featurestore_pb2.GetUserFeaturesRequest(user_id=u) for u in users])
    for user_request in out.users[:count]:
        user = user_request.user_id
        reply = await stubs["featurestore"].GetUserFeatures(user_request, timeout=CALL_TIMEOUT_S)
        feature = reply.features.features.get("country")
        where = (feature.value.string_value if feature is not None else "") or country
        request = candidates_pb2.GetCandidatesRequest(
            user_id=user, country=where, features=reply.features, limit=TITLES
        )
        found = await stubs["candidates"].GetCandidates(request, timeout=CALL_TIMEOUT_S)
        if not found.title_ids:
            continue
        out.candidates.append(request)
        out.titles.append(featurestore_pb2.GetTitleFeaturesRequest(title_ids=found.title_ids))
        out.rank.append(
            ranker_pb2.RankRequest(
                user_id=user,
                country=where,
                features=reply.features,
                title_ids=found.title_ids,
                retrieval_scores=found.scores,
            )
        )
    if not out.rank:
        raise BenchError("no prepared member got a candidate: nothing to measure")
    return out


async def scenarios(
    stubs: dict[str, Any], requests: Requests, args: argparse.Namespace
) -> dict[str, Any]:
    store, r = stubs["featurestore"], requests

    async def features(i: int, stats: dict[str, Stats] | None) -> None:
        s = stats or {}
        started = time.perf_counter()
        call = store.GetUserFeatures(r.users[i % len(r.users)], timeout=CALL_TIMEOUT_S)
        user_ms = await timed(call, s.get(USER))
        call = store.GetTitleFeatures(r.titles[i % len(r.titles)], timeout=CALL_TIMEOUT_S)
        title_ms = await timed(call, s.get(TITLE))
        if stats is not None and user_ms is not None and title_ms is not None:
            stats[PAIR].client_ms.append((time.perf_counter() - started) * 1000)
            stats[PAIR].server_ms.append(user_ms + title_ms)

    def single(method: Any, calls: list[Any], row: str) -> Step:
        async def step(i: int, stats: dict[str, Stats] | None) -> None:
            await timed(
                method(calls[i % len(calls)], timeout=CALL_TIMEOUT_S), (stats or {}).get(row)
            )

        return step

    results: dict[str, Any] = {}
    results.update(await drive(features, args, [USER, TITLE, PAIR]))
    candidates = stubs["candidates"].GetCandidates
    results.update(await drive(single(candidates, r.candidates, CANDIDATES), args, [CANDIDATES]))
    results.update(await drive(single(stubs["ranker"].Rank, r.rank, RANK), args, [RANK]))
    return results


def report(catalog: str, results: dict[str, Any]) -> None:
    targets = {row: (target, only) for row, target, only in TARGETS}
    print(f"  {'':38}{'client ms':>16}{'server ms':>16}")
    head = f"{'call':38}{'p50':>8}{'p99':>8}{'p50':>8}{'p99':>8}{'calls/s':>9}{'errors':>7}"
    print(f"  {head}  target: server p99")
    for row, (stats, elapsed) in results.items():
        c50, c99, s50, s99 = (
            [*np.percentile(stats.client_ms, [50, 99]), *np.percentile(stats.server_ms, [50, 99])]
            if stats.client_ms
            else [float("nan")] * 4
        )
        errors = sum(stats.errors.values())
        line = f"{row:38}{c50:8.2f}{c99:8.2f}{s50:8.2f}{s99:8.2f}"
        line += f"{len(stats.client_ms) / elapsed:9,.0f}{errors:7}"
        target, only = targets.get(row, (0.0, None))
        if target and only not in (None, catalog):
            line += f"  <= {target:g} ms over {only} titles (not this catalog)"
        elif target:  # NaN (no successful call) is not met
            line += f"  <= {target:g} ms: {'met' if s99 <= target else 'NOT met'}"
        print(f"  {line}" + (f"  {dict(stats.errors)}" if errors else ""))


async def run_catalog(
    catalog: str, root: Path, users: list[str], args: argparse.Namespace, log_dir: Path
) -> None:
    registry = ModelRegistry(root)
    versions = {name: current(registry, name) for name in MODELS}
    titles = len(json.loads((versions["two_tower"].path / "title_ids.json").read_bytes()))
    described = ", ".join(f"{n} {v.version}" for n, v in versions.items())
    print(f"\ncatalog {catalog}: {titles:,} titles ({described}) in {root}")
    services: list[Service] = []
    channels: dict[str, grpc.aio.Channel] = {}
    try:
        services.extend(start_service(name, root, log_dir) for name in STUBS)
        started = time.perf_counter()
        await asyncio.gather(*(wait_serving(s) for s in services))
        print(f"  services SERVING {time.perf_counter() - started:.1f} s after start")
        for s in services:
            channels[s.name] = grpc.aio.insecure_channel(s.address)
        stubs = {name: STUBS[name](channel) for name, channel in channels.items()}
        country = most_common_country(versions["title_features"])
        try:
            requests = await prepare(stubs, users, args.prepared, country)
        except grpc.aio.AioRpcError as exc:
            raise BenchError(f"preparing: {exc.code().name} {exc.details()}") from None
        print(
            f"  {len(users)} members for GetUserFeatures, {len(requests.rank)} prepared; "
            f"{args.warmup:g} s warm-up + {args.duration:g} s each"
        )
        for concurrency in args.concurrency:
            # One call in flight: the service's own time. More: throughput, and the queueing
            # inside a one-core service that the server time then includes.
            print(f"  {concurrency} call(s) in flight")
            step_args = argparse.Namespace(**{**vars(args), "concurrency": concurrency})
            results = await scenarios(stubs, requests, step_args)
            for s in services:
                s.check_alive()
            report(catalog, results)
    finally:
        for channel in channels.values():
            await channel.close()
        stop_services(services)


def most_common_country(version: ModelVersion) -> str:
    """The country most titles are available in: for members without a country feature."""
    from recsys.features.title_table import TitleFeatureTable

    lists = TitleFeatureTable.load(version).columns["available_countries"]
    counts = Counter(c for countries in lists for c in countries)
    return counts.most_common(1)[0][0] if counts else "US"


async def main() -> None:
    args = parse_args()
    task = asyncio.current_task()
    assert task is not None  # SIGTERM, like Ctrl-C, stops the services through the finally blocks
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    settings = Settings()
    source = ModelRegistry(settings.models.root)
    for name in MODELS:
        current(source, name)
    users, real = await find_members(settings, args.members)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"machine: {os.cpu_count()} cores, load average {load} before the run; "
        "services local (one process each), one client process, "
        f"concurrency {', '.join(map(str, args.concurrency))}"
    )
    print(
        f"members: {len(users)} from Redis ({settings.redis.key_prefix}:user:*:rt)"
        if real
        else f"members: no {settings.redis.key_prefix}:user:*:rt key in Redis; synthetic ids"
    )
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        if args.catalog in ("default", "both"):
            await run_catalog("default", settings.models.root, users, args, work)
        if args.catalog in ("100k", "both"):
            started = time.perf_counter()
            build_100k(source, work / "registry", args.titles, args.seed)
            print(f"\n100k registry built in {time.perf_counter() - started:.1f} s")
            await run_catalog("100k", work / "registry", users, args, work)
    print(f"\nload average {', '.join(f'{x:.2f}' for x in os.getloadavg())} after the run")


def _counts(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of counts"
        ) from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("every concurrency must be at least 1")
    return counts


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each scenario")
    parser.add_argument(
        "--concurrency",
        type=_counts,
        default=[1, 4],
        help="calls in flight, comma-separated: each is a run (default 1,4)",
    )
    parser.add_argument("--catalog", choices=["default", "100k", "both"], default="both")
    parser.add_argument("--titles", type=int, default=100_000, help="titles of the 100k catalog")
    parser.add_argument("--members", type=int, default=1000, help="members for GetUserFeatures")
    parser.add_argument(
        "--prepared", type=int, default=16, help="members whose features and candidates are reused"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated titles")
    return parser.parse_args()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except BenchError as exc:
        raise SystemExit(str(exc)) from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        raise SystemExit("interrupted; the benchmark's services were stopped") from None
