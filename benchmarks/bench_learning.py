"""Offline quality and wall time of the learning stage: every baseline and both models on
held-out interactions (docs/learning.md), per dataset.

    .venv/bin/python benchmarks/bench_learning.py                      # all three datasets
    .venv/bin/python benchmarks/bench_learning.py --dataset movietweetings
    .venv/bin/python benchmarks/bench_learning.py --dataset ml100k-shaped --dataset world

- **movietweetings**: ../shared/data/movietweetings-100k (100,000 ratings, Feb-Sep 2013), read
  with the importer's own parser; every rating is an interaction.
- **ml100k-shaped**: MovieLens 100K is not in the repository and there is no internet, so this
  is a stand-in of its *shape*: 943 members, 1,682 titles, about 100,000 ratings, at least 20
  per member (heavy-tailed), over 7 months, drawn by the simulator's taste model (titles chosen
  by popularity^0.8 x fit^1.5 without replacement), written as ``u.data`` + ``u.item`` and read
  back with the importer's MovieLens parser. Its figures say how the models compare on data of
  that size and density, not what they score on the real MovieLens 100K.
- **world**: the default synthetic world (15k titles, 100k members, seed 7) and ``--days`` days
  of ``--sessions`` sessions a day planned by the simulator's behaviour model, through a
  temporary lake (bronze -> silver, as the bootstrap reads it).

Each dataset goes through :func:`recsys_pipelines.learning.fit.fit_and_evaluate`, the code the
bootstrap runs: the split (the latest 20 % of each member's interactions held out), baselines
tuned on a validation split, both models trained, exported and evaluated through the serving
path, then refitted on everything. Threads: torch 2, implicit 2, onnxruntime 1-2, BLAS 1-2.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recsys_pipelines.learning.evaluation import format_table
from recsys_pipelines.learning.fit import FitResult, LearningConfig, fit_and_evaluate
from recsys_pipelines.learning.interactions import Interactions
from recsys_pipelines.learning.lakedata import LearningData

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def from_source(data: object) -> LearningData:
    """LearningData from an importer's parsed ratings (SourceData), as the lake would hold it:
    ids as the importer maps them, ratings rescaled to 1-5, genres mapped, release ages."""
    from recsys_datagen.importers.genres import map_genres
    from recsys_datagen.importers.mapping import member_id, rescale_ratings, title_id

    source = data.source  # type: ignore[attr-defined]
    keys = data.movie_keys  # type: ignore[attr-defined]
    users = [member_id(source, int(u)) for u in data.user]  # type: ignore[attr-defined]
    titles = [title_id(source, keys[m]) for m in data.movie]  # type: ignore[attr-defined]
    movies = {title_id(source, m.key): m for m in data.movies}  # type: ignore[attr-defined]
    stamps = data.timestamp  # type: ignore[attr-defined]
    interactions = Interactions.build(
        users,
        titles,
        stamps * 1_000_000,
        list(movies),
        ratings=rescale_ratings(source, data.rating),  # type: ignore[attr-defined]
        completed=np.ones(len(users), bool),
    )
    as_of = datetime.fromtimestamp(int(stamps.max()), UTC).date()
    genres, ages = [], []
    for t in interactions.titles:
        movie = movies.get(t)
        genres.append(list(map_genres(movie.genres)) if movie else [])
        released = movie.release_date if movie else None
        ages.append((as_of - released).days if released else -1)
    return LearningData(
        interactions, {"title_genres": genres, "release_age_days": ages}, as_of, ["US"], []
    )


def movietweetings() -> LearningData:
    from recsys_datagen.importers.movietweetings import read_movietweetings

    return from_source(read_movietweetings(DATA / "movietweetings-100k"))


def ml100k_shaped(folder: Path, seed: int = 11) -> LearningData:
    """Write an ML-100K-shaped u.data + u.item from the taste model, read it back."""
    from recsys_datagen.importers.movielens import read_movielens
    from recsys_datagen.sim_world import SimWorld
    from recsys_datagen.world import WorldSpec, generate_world

    world = generate_world(WorldSpec(seed=seed, titles=1682, members=943, as_of=date(1998, 4, 23)))
    sim = SimWorld.from_tables(world.titles, world.members)
    rng = np.random.default_rng(seed)
    # ML-100K: >= 20 ratings a member, mean ~106, max 737.
    counts = np.minimum(20 + rng.lognormal(3.6, 1.1, sim.member_count).astype(int), 737)
    counts = (counts * 100_000 / counts.sum()).astype(int).clip(20, 737)
    start = int(datetime(1997, 9, 20, tzinfo=UTC).timestamp())
    span = int(datetime(1998, 4, 22, tzinfo=UTC).timestamp()) - start
    pop = sim.popularity**0.8
    lines = []
    for member in range(sim.member_count):
        fit = 18.0 * (sim.genre_matrix @ sim.member_tastes[member])
        weights = pop * fit**1.5
        chosen = rng.choice(
            sim.title_count, counts[member], replace=False, p=weights / weights.sum()
        )
        first = start + int(rng.integers(0, span - 86_400 * 30))
        # a few rating sessions, each rating seconds to days apart
        offsets = np.sort(rng.exponential(86_400 * 5, len(chosen)).cumsum() / 4).astype(int)
        for title, offset in zip(chosen.tolist(), offsets.tolist(), strict=True):
            rating = int(np.clip(round(3.2 + 0.8 * np.log(fit[title]) + rng.normal(0, 0.8)), 1, 5))
            lines.append(
                f"{member + 1}\t{title + 1}\t{rating}\t{min(first + offset, start + span)}"
            )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    genres = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
              "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
              "Romance", "Sci-Fi", "Thriller", "War", "Western"]  # fmt: skip
    ours = {
        g.lower().replace("-", "_").replace("children's", "family"): i for i, g in enumerate(genres)
    }
    items = []
    for i, (name, released, gs) in enumerate(
        zip(
            world.titles.column("name").to_pylist(),
            world.titles.column("release_date").to_pylist(),
            world.titles.column("genres").to_pylist(),
            strict=True,
        )
    ):
        flags = ["0"] * 19
        for g in gs:
            if g in ours:
                flags[ours[g]] = "1"
        when = released.strftime("%d-%b-%Y")
        items.append(f"{i + 1}|{name} ({released.year})|{when}||http://x|" + "|".join(flags))
    (folder / "u.item").write_text("\n".join(items) + "\n", encoding="latin-1", errors="replace")
    return from_source(read_movielens(folder))


def world(folder: Path, days: int, sessions: int) -> tuple[LearningData, float]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.integration.learning.world import small_world_lake

    from recsys.lake import load_catalog
    from recsys_pipelines.learning.lakedata import load_lake_data

    started = time.perf_counter()
    lake = small_world_lake(
        folder, titles=15_000, members=100_000, days=days, sessions_per_day=sessions
    )
    built = time.perf_counter() - started
    catalog = load_catalog(lake.settings.lake)
    data = load_lake_data(catalog, lake.settings.lake, lake.settings.pipelines, lake.last_day)
    print(f"world: {lake.events:,} events over {days} days, bronze + silver in {built:.1f} s")
    return data, built


def run(name: str, data: LearningData, config: LearningConfig, work: Path) -> FitResult:
    i = data.interactions
    print(f"\n== {name}: {len(i):,} interactions, {i.n_users:,} members, {i.n_titles:,} titles")
    started = time.perf_counter()
    result = fit_and_evaluate(data, config, work / name, progress=lambda m: None)
    total = time.perf_counter() - started
    print(
        f"split: {result.train_interactions:,} training / {result.test_interactions:,} held-out "
        f"interactions, {result.eval_users:,} members evaluated, K={config.k}"
    )
    print(format_table(result.rows))
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    print(f"wall time: {total:.1f} s ({stages})")
    print(
        "ONNX parity (max abs diff): "
        + ", ".join(f"{k} {v:.2e}" for k, v in result.published.parity.items())
    )
    return result


def _configured(overrides: list[str]) -> LearningConfig:
    import ast
    from dataclasses import replace

    config = LearningConfig()
    for item in overrides:
        key, _, text = item.partition("=")
        value = ast.literal_eval(text) if text[:1] in "0123456789-([{'\"." else text
        if "." in key:
            section, field = key.split(".", 1)
            config = replace(
                config, **{section: replace(getattr(config, section), **{field: value})}
            )
        else:
            config = replace(config, **{key: value})
    print(f"config: {config}")
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset", action="append", choices=["movietweetings", "ml100k-shaped", "world"]
    )
    parser.add_argument("--days", type=int, default=14, help="world: days of traffic")
    parser.add_argument("--sessions", type=int, default=20_000, help="world: sessions a day")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override a LearningConfig field, e.g. two_tower.loss=full, candidates=200",
    )
    args = parser.parse_args()
    datasets = args.dataset or ["movietweetings", "ml100k-shaped", "world"]
    config = _configured(args.set)
    with tempfile.TemporaryDirectory(prefix="bench-learning-") as tmp:
        work = Path(tmp)
        for name in datasets:
            if name == "movietweetings":
                run(name, movietweetings(), config, work)
            elif name == "ml100k-shaped":
                run(name, ml100k_shaped(work / "ml100k"), config, work)
            else:
                data, _ = world(work / "world", args.days, args.sessions)
                run(name, data, config, work)


if __name__ == "__main__":
    main()
