from __future__ import annotations

import pytest

from recsys_datagen.sim_world import SimWorld
from recsys_datagen.world import WorldSpec, generate_world


@pytest.fixture(scope="session")
def sim_world() -> SimWorld:
    """A small generated world as the simulator sees it."""
    world = generate_world(WorldSpec(seed=3, titles=300, members=1_000))
    return SimWorld.from_tables(world.titles, world.members)
