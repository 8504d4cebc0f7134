"""The synthetic world generator: determinism, shapes and ranges, distributions."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from recsys.catalog import DEVICES, GENRES, ID_PATTERN, ISO_COUNTRIES, MATURITY_RATINGS, PLAN_TIERS
from recsys.markets import LANGUAGES, MARKETS
from recsys_datagen.dimensions import MEMBER_SCHEMA, TITLE_SCHEMA
from recsys_datagen.world import PLAN_SCREENS, World, WorldSpec, generate_world

SPEC = WorldSpec(seed=7, titles=400, members=3_000, as_of=date(2026, 1, 1))


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(SPEC)


def test_the_same_seed_gives_an_identical_world(world: World) -> None:
    again = generate_world(SPEC)
    assert again.titles.equals(world.titles)
    assert again.members.equals(world.members)


def test_another_seed_gives_another_world(world: World) -> None:
    other = generate_world(WorldSpec(seed=8, titles=400, members=3_000))
    assert not other.titles.equals(world.titles)
    assert not other.members.equals(world.members)


def test_titles_do_not_depend_on_the_number_of_members(world: World) -> None:
    # Titles and members draw from separate child streams of the seed.
    fewer = generate_world(WorldSpec(seed=7, titles=400, members=10, as_of=SPEC.as_of))
    assert fewer.titles.equals(world.titles)


def test_tables_have_the_dimension_schemas(world: World) -> None:
    assert world.titles.schema.equals(TITLE_SCHEMA)
    assert world.members.schema.equals(MEMBER_SCHEMA)
    assert (world.titles.num_rows, world.members.num_rows) == (400, 3_000)


def test_titles_are_in_range(world: World) -> None:
    rows = world.titles.to_pylist()
    assert [r["title_id"] for r in rows] == [f"t{i:06d}" for i in range(400)]
    markets = {m.country for m in MARKETS}
    for r in rows:
        assert ID_PATTERN.match(r["title_id"])
        assert r["source"] == "synthetic"
        assert r["name"]
        assert r["director"]
        assert 1 <= len(r["genres"]) <= 3
        assert len(set(r["genres"])) == len(r["genres"])
        assert set(r["genres"]) <= set(GENRES)
        assert r["language"] in LANGUAGES
        assert r["maturity_rating"] in MATURITY_RATINGS
        assert date(1930, 1, 1) <= r["release_date"] <= SPEC.as_of
        assert r["popularity"] > 0
        assert r["available_countries"]
        assert set(r["available_countries"]) <= markets
        if r["kind"] == "movie":
            assert 70 <= r["runtime_min"] <= 200
            assert r["seasons"] is None
            assert r["episodes"] is None
        else:
            assert r["kind"] == "series"
            assert 18 <= r["runtime_min"] <= 75
            assert 1 <= r["seasons"] <= 12
            assert r["episodes"] >= 6 * r["seasons"]


def test_popularity_is_zipf_like(world: World) -> None:
    shares = np.sort(world.titles.column("popularity").to_numpy())[::-1]
    assert shares.sum() == pytest.approx(1.0)
    # Weight r^-1 by rank: the top title has exactly 10 times the share of the tenth.
    assert shares[0] / shares[9] == pytest.approx(10.0)
    assert shares[: len(shares) // 100].sum() > 0.25  # the top 1 % holds a large share


def test_catalog_mixes_series_movies_and_genres(world: World) -> None:
    kinds = world.titles.column("kind").to_pylist()
    assert 0.2 < kinds.count("series") / len(kinds) < 0.4
    primary = [g[0] for g in world.titles.column("genres").to_pylist()]
    assert len(set(primary)) >= 15  # nearly every genre leads some title
    assert primary.count("drama") > primary.count("western")


def test_members_are_in_range(world: World) -> None:
    rows = world.members.to_pylist()
    assert [r["user_id"] for r in rows] == [f"u{i:07d}" for i in range(3_000)]
    main_language = {m.country: m.languages[0] for m in MARKETS}
    for r in rows:
        assert ID_PATTERN.match(r["user_id"])
        assert r["country"] in main_language
        assert r["plan_tier"] in PLAN_TIERS
        screens = int(PLAN_SCREENS[PLAN_TIERS.index(r["plan_tier"])])
        assert 1 <= len(r["devices"]) <= screens
        assert len(set(r["devices"])) == len(r["devices"])
        assert set(r["devices"]) <= set(DEVICES)
        assert r["languages"][0] == main_language[r["country"]]
        prefs = r["genre_preferences"]
        assert len(prefs) == len(GENRES)
        assert min(prefs) > 0
        assert sum(prefs) == pytest.approx(1.0, abs=1e-5)
        assert 1 <= len(r["preferred_hours"]) <= 4
        assert all(0 <= h <= 23 for h in r["preferred_hours"])
        assert r["activity"] > 0
        assert date(2010, 1, 1) <= r["signup_date"] <= SPEC.as_of


def test_members_follow_market_shares_and_evening_habits(world: World) -> None:
    countries = world.members.column("country").to_pylist()
    us_share = next(m.member_share for m in MARKETS if m.country == "US") / sum(
        m.member_share for m in MARKETS
    )
    assert countries.count("US") / len(countries) == pytest.approx(us_share, abs=0.03)
    hours = [h for hs in world.members.column("preferred_hours").to_pylist() for h in hs]
    evening = sum(1 for h in hours if 19 <= h <= 23)
    assert evening / len(hours) > 0.5


def test_tastes_are_concentrated_on_a_few_genres(world: World) -> None:
    prefs = np.array(world.members.column("genre_preferences").to_pylist())
    # Uniform tastes would put 1/18 = 0.056 on every genre.
    assert np.mean(prefs.max(axis=1)) > 0.3
    assert np.mean(np.sort(prefs, axis=1)[:, -3:].sum(axis=1)) > 0.6


def test_markets_are_real_countries() -> None:
    assert {m.country for m in MARKETS} <= ISO_COUNTRIES


@pytest.mark.parametrize(("titles", "members", "seed"), [(0, 1, 1), (1, 0, 1), (1, 1, -1)])
def test_impossible_worlds_are_refused(titles: int, members: int, seed: int) -> None:
    with pytest.raises(ValueError, match=r"at least one|non-negative"):
        WorldSpec(seed=seed, titles=titles, members=members)
