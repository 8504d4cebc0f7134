"""A small synthetic world in a temporary lake, for the learning tests and benchmark.

    lake = small_world_lake(tmp_path, titles=300, members=400, days=6, sessions_per_day=400)

The world generator's titles and members, and days of sessions planned by the simulator's own
behaviour model, written to bronze as the bronze writer does, then silver. No server is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]

from recsys.config import LakeSettings, Settings
from recsys.lake import load_catalog
from recsys_pipelines.settings import PipelineSettings
from recsys_pipelines.silver import run_silver
from tests.lake_support import bronze_row, write_bronze, write_dims

__all__ = ["SmallWorld", "WorldLake", "small_world", "small_world_lake"]


@dataclass
class WorldLake:
    settings: Settings
    first_day: date
    last_day: date
    events: int


def _events(
    sim: Any, first: date, days: int, sessions_per_day: int, seed: int
) -> Iterator[dict[str, Any]]:
    from recsys_datagen.behaviour import plan_session

    rng = np.random.default_rng(seed)
    start = int(datetime.combine(first, datetime.min.time(), UTC).timestamp() * 1000)
    end = start + days * 86_400_000
    planned = []
    for _ in range(sessions_per_day * days):
        at = start + int(rng.integers(0, days * 86_400_000))
        cdf = sim.member_cdf(int(at // 3_600_000) % 24)
        member = min(
            int(np.searchsorted(cdf, rng.random() * cdf[-1], "right")), sim.member_count - 1
        )
        planned.extend(plan_session(sim, member, at, rng, time_scale=1.0))
    planned.sort(key=lambda p: p.at_ms)
    for p in planned:
        if p.at_ms < end:
            yield p.event


@dataclass
class SmallWorld:
    """A generated world's dimension rows and its planned events (JSON dicts, in time order)."""

    titles: pa.Table
    members: pa.Table
    events: list[dict[str, Any]]
    first_day: date
    last_day: date

    def write_dims(self, settings: Settings) -> None:
        """``dim_titles`` and ``dim_members``, as `recsys world generate` stores them."""
        write_dims(settings, self.titles, self.members, "synthetic")

    def bronze_rows(self) -> Iterator[dict[str, Any]]:
        """The events as the bronze writer archives them (offsets counted from 0)."""
        for offset, event in enumerate(self.events):
            yield bronze_row(event, offset)


def small_world(
    *,
    titles: int = 300,
    members: int = 400,
    days: int = 6,
    sessions_per_day: int = 400,
    last_day: date = date(2026, 11, 20),
    seed: int = 7,
) -> SmallWorld:
    """The world generator's titles and members and ``days`` days of sessions ending on
    ``last_day``, planned by the simulator's behaviour model."""
    from recsys_datagen.sim_world import SimWorld
    from recsys_datagen.world import WorldSpec, generate_world

    world = generate_world(WorldSpec(seed=seed, titles=titles, members=members, as_of=last_day))
    sim = SimWorld.from_tables(world.titles, world.members)
    first = last_day - timedelta(days=days - 1)
    events = list(_events(sim, first, days, sessions_per_day, seed))
    return SmallWorld(world.titles, world.members, events, first, last_day)


def small_world_lake(
    root: Path,
    *,
    titles: int = 300,
    members: int = 400,
    days: int = 6,
    sessions_per_day: int = 400,
    last_day: date = date(2026, 11, 20),
    seed: int = 7,
) -> WorldLake:
    """A lake under ``root`` holding the world and ``days`` days of traffic ending on
    ``last_day``, with silver built."""
    lake = LakeSettings(warehouse=root / "lake")
    settings = Settings().model_copy(
        update={"lake": lake, "pipelines": PipelineSettings(engine_threads=1)}
    )
    settings.models.root = root / "models"
    world = small_world(
        titles=titles,
        members=members,
        days=days,
        sessions_per_day=sessions_per_day,
        last_day=last_day,
        seed=seed,
    )
    world.write_dims(settings)
    write_bronze(settings, world.events, batch=20_000)
    run_silver(load_catalog(lake), lake, settings.pipelines)
    return WorldLake(settings, world.first_day, last_day, len(world.events))
