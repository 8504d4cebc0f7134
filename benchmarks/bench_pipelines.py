"""Wall time per stage of the batch pipelines, on the default synthetic world and on imported
ratings, against the running Cassandra (features go to a keyspace of the benchmark's own).

    .venv/bin/python benchmarks/bench_pipelines.py                         # both datasets
    .venv/bin/python benchmarks/bench_pipelines.py --dataset world --sessions 50000
    .venv/bin/python benchmarks/bench_pipelines.py --dataset ratings

- **world**: `recsys world generate`'s default world (15k titles, 100k members, seed 7, its
  "today" set to the benchmark day) and one
  UTC day of traffic planned by the simulator's behaviour model (``--sessions`` sessions, start
  times spread over the day by the members' diurnal activity, real time: ``--time-scale 1``),
  written to bronze as the bronze writer does (micro-commits of 10,000 rows). Then the daily
  run of that day (silver incremental over the new bronze, gold, features, snapshot, Cassandra),
  a second silver run (nothing new), and a training set of that day (a tenth of the unplayed
  impressions, every played one).
- **ratings**: the MovieTweetings 100k ratings of ../shared/data (300,000 events: play,
  complete, rate per rating, the importer's own mapping) into bronze the same way; then a full
  silver build, the daily run of the last day, a backfill of its 30 days before, and a training
  set of the last 7 days (sampled negatives: no impressions in that data).

Everything goes to a temporary lake; the keyspace is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.lake_support import write_bronze, write_dims

from recsys.clients.cassandra import connect_cassandra
from recsys.config import LakeSettings, Settings
from recsys.infra.cql_migrations import apply_migrations, drop_keyspace
from recsys.lake import load_catalog
from recsys_pipelines.daily import DailyContext, backfill, run_daily
from recsys_pipelines.dates import today_utc
from recsys_pipelines.settings import load_pipeline_settings
from recsys_pipelines.silver import run_silver
from recsys_pipelines.training import build_training_set


def world_day_events(
    day: date, sessions: int, seed: int
) -> tuple[Any, Any, Iterator[dict[str, Any]]]:
    from recsys_datagen.behaviour import plan_session
    from recsys_datagen.sim_world import SimWorld
    from recsys_datagen.world import WorldSpec, generate_world

    # The world's "today" is the benchmark day, so it has titles released in the 6 months before.
    world = generate_world(WorldSpec(seed=7, titles=15_000, members=100_000, as_of=day))
    sim = SimWorld.from_tables(world.titles, world.members)
    rng = np.random.default_rng(seed)
    start = int(datetime.combine(day, datetime.min.time(), UTC).timestamp() * 1000)

    def events() -> Iterator[dict[str, Any]]:
        planned = []
        for _ in range(sessions):
            at = start + int(rng.integers(0, 86_400_000))
            cdf = sim.member_cdf(int(at // 3_600_000) % 24)
            member = min(
                int(np.searchsorted(cdf, rng.random() * cdf[-1], "right")), sim.member_count - 1
            )
            planned.extend(plan_session(sim, member, at, rng, time_scale=1.0))
        planned.sort(key=lambda p: p.at_ms)
        end = start + 86_400_000
        for p in planned:
            if p.at_ms < end:  # the sessions that run past midnight are cut there
                yield p.event

    return world.titles, world.members, events()


def timed(label: str, results: list[tuple[str, float, str]], note: str = "") -> Any:
    class _T:
        def __enter__(self) -> None:
            self.t = time.perf_counter()

        def __exit__(self, *exc: object) -> None:
            results.append((label, time.perf_counter() - self.t, note))

    return _T()


def print_results(title: str, results: list[tuple[str, float, str]]) -> None:
    print(f"\n{title}")
    for label, seconds, note in results:
        print(f"  {label:44s} {seconds:8.2f} s  {note}")


def bench_world(settings: Settings, ctx: DailyContext, sessions: int) -> None:
    day = today_utc() - timedelta(days=2)
    results: list[tuple[str, float, str]] = []
    with timed("plan a day of sessions + write bronze", results):
        titles, members, events = world_day_events(day, sessions, seed=1)
        write_dims(settings, titles, members, "synthetic")
        n = write_bronze(settings, events)
    results[-1] = (*results[-1][:2], f"{n:,} events, {sessions:,} sessions")
    report = run_daily(ctx, day)
    total = sum(report.seconds.values())
    for stage, seconds in report.seconds.items():
        results.append((f"daily run: {stage}", seconds, ""))
    results.append(("daily run, all stages", total, f"{report.counts}"))
    with timed("silver again (nothing new)", results):
        run_silver(ctx.catalog, settings.lake, ctx.pipelines)
    with timed("snapshot of the day before (empty)", results):
        run_daily(ctx, day - timedelta(days=1), allow_empty=True, silver=False, to_cassandra=False)
    clock = time.perf_counter()
    rows, training = build_training_set(
        ctx.catalog, settings.lake, ctx.pipelines, day, day, unplayed_share=0.1
    )
    results.append(
        (
            "training set of the day",
            time.perf_counter() - clock,
            f"{rows.num_rows:,} rows, { {k: round(v, 1) for k, v in training.seconds.items()} }",
        )
    )
    print_results(f"default world, {day} ({n:,} events)", results)


def bench_ratings(settings: Settings, ctx: DailyContext, path: Path) -> None:
    from recsys_datagen.importers.mapping import build_catalog, iter_events
    from recsys_datagen.importers.movietweetings import read_movietweetings

    results: list[tuple[str, float, str]] = []
    with timed("parse + write bronze", results):
        data = read_movietweetings(path)
        imported = build_catalog(data)
        write_dims(settings, imported.titles, imported.members, data.source)
        n = write_bronze(settings, iter_events(data))
    results[-1] = (*results[-1][:2], f"{n:,} events")
    last = datetime.fromtimestamp(int(data.timestamp.max()), UTC).date()
    with timed("silver, full build", results):
        silver = run_silver(ctx.catalog, settings.lake, ctx.pipelines)
    days = len(silver.tables[0].days)
    results[-1] = (*results[-1][:2], f"{days} days")
    report = run_daily(ctx, last, silver=False)
    for stage, seconds in report.seconds.items():
        results.append((f"daily run of {last}: {stage}", seconds, ""))
    with timed("backfill of the 30 days before", results):
        backfill(ctx, last - timedelta(days=30), last - timedelta(days=1))
    clock = time.perf_counter()
    rows, training = build_training_set(
        ctx.catalog,
        settings.lake,
        ctx.pipelines,
        last - timedelta(days=7),
        last - timedelta(days=1),
    )
    results.append(
        (
            "training set of 7 days (sampled negatives)",
            time.perf_counter() - clock,
            f"{rows.num_rows:,} rows, {training.by_source}",
        )
    )
    print_results(f"MovieTweetings 100k ({n:,} events)", results)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--dataset", choices=["world", "ratings", "both"], default="both")
    parser.add_argument("--sessions", type=int, default=50_000)
    parser.add_argument(
        "--ratings",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared" / "data" / "movietweetings-100k",
    )
    parser.add_argument("--no-cassandra", action="store_true")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary lake (printed).")
    args = parser.parse_args()
    base = Settings()
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()}")
    for dataset in ["world", "ratings"] if args.dataset == "both" else [args.dataset]:
        root = Path(tempfile.mkdtemp(prefix=f"bench-pipelines-{dataset}-"))
        keyspace = f"bench_pipe_{uuid.uuid4().hex[:8]}"
        client = None
        try:
            cassandra = base.cassandra.model_copy(update={"keyspace": keyspace})
            settings = base.model_copy(
                update={"lake": LakeSettings(warehouse=root / "lake"), "cassandra": cassandra}
            )
            if not args.no_cassandra:
                client = connect_cassandra(base.cassandra)
                apply_migrations(client, base.cassandra, keyspace=keyspace)
            ctx = DailyContext(
                settings, load_pipeline_settings(), load_catalog(settings.lake), client
            )
            if dataset == "world":
                bench_world(settings, ctx, args.sessions)
            else:
                bench_ratings(settings, ctx, args.ratings)
        finally:
            if client is not None:
                drop_keyspace(client, keyspace)
                client.close()
            if args.keep:
                print(f"lake kept in {root / 'lake'}")
            else:
                shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
