"""The synthetic world: a catalog of titles and a base of members, from one seed.

    world = generate_world(WorldSpec(seed=42, titles=15_000, members=100_000))
    world.titles, world.members  # pyarrow tables with TITLE_SCHEMA and MEMBER_SCHEMA

Everything is drawn with numpy ``Generator(PCG64)`` streams derived from the seed, column by
column over whole arrays (no per-row Python loop except for formatting names), so 100k members
take a second or two. The same spec always gives identical tables: titles and members use
separate child streams, and nothing reads the clock (``as_of`` is part of the spec).
The distributions are described in docs/data.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]

from recsys.catalog import DEVICES, GENRES, MATURITY_RATINGS, PLAN_TIERS
from recsys.markets import LANGUAGE_WEIGHTS, LANGUAGES, MARKETS
from recsys_datagen.dimensions import MEMBER_SCHEMA, SYNTHETIC, TITLE_SCHEMA

__all__ = [
    "DEFAULT_AS_OF",
    "World",
    "WorldSpec",
    "generate_members",
    "generate_titles",
    "generate_world",
    "member_id",
    "title_id",
]

# A fixed reference date, not today: the world must not change with the day it is generated.
DEFAULT_AS_OF = date(2026, 1, 1)
_EPOCH = date(1970, 1, 1)
_OLDEST_RELEASE = date(1930, 1, 1)
_FIRST_SIGNUP = date(2010, 1, 1)

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

# How common each genre is in the catalog (GENRES order); a member's tastes are drawn around it.
GENRE_WEIGHTS = np.array(
    [
        0.09,  # action
        0.06,  # adventure
        0.04,  # animation
        0.14,  # comedy
        0.07,  # crime
        0.06,  # documentary
        0.17,  # drama
        0.04,  # family
        0.04,  # fantasy
        0.05,  # horror
        0.02,  # music
        0.04,  # mystery
        0.07,  # romance
        0.04,  # sci_fi
        0.02,  # sport
        0.08,  # thriller
        0.015,  # war
        0.01,  # western
    ]
)
GENRE_WEIGHTS = GENRE_WEIGHTS / GENRE_WEIGHTS.sum()
assert len(GENRE_WEIGHTS) == len(GENRES)

GENRE_COUNT_P = (0.35, 0.45, 0.20)  # a title has 1, 2 or 3 genres
SERIES_SHARE = 0.30
NEW_RELEASE_SHARE = 0.04  # released in the last 120 days before as_of
GLOBAL_LICENCE_SHARE = 0.25  # available in every market
ZIPF_EXPONENT = 1.0  # popularity of the title at rank r is proportional to r^-s
TASTE_CONCENTRATION = 3.0  # Dirichlet total concentration: low means a few dominant genres
TASTE_FLOOR = 0.1  # share of a member's taste that follows the catalog mix: nobody hates a genre
PLAN_P = (0.30, 0.45, 0.25)  # basic, standard, premium
PLAN_SCREENS = np.array([1, 2, 4])  # most devices a plan lets a member register
DEVICE_WEIGHTS = np.array(
    [0.38, 0.32, 0.11, 0.14, 0.05]
)  # DEVICES order: tv mobile tablet web console

_G = {name: i for i, name in enumerate(GENRES)}
_M = {name: i for i, name in enumerate(MATURITY_RATINGS)}


def _maturity_table() -> Floats:
    """P(maturity | primary genre), rows in GENRES order, columns in MATURITY_RATINGS order."""
    default = [0.10, 0.15, 0.40, 0.25, 0.10]
    table = np.tile(np.array(default), (len(GENRES), 1))
    special = {
        "animation": [0.45, 0.40, 0.15, 0.0, 0.0],
        "family": [0.55, 0.35, 0.10, 0.0, 0.0],
        "documentary": [0.40, 0.20, 0.30, 0.10, 0.0],
        "music": [0.40, 0.25, 0.30, 0.05, 0.0],
        "sport": [0.45, 0.25, 0.25, 0.05, 0.0],
        "horror": [0.0, 0.0, 0.15, 0.40, 0.45],
        "thriller": [0.0, 0.05, 0.35, 0.40, 0.20],
        "crime": [0.0, 0.05, 0.30, 0.40, 0.25],
        "war": [0.0, 0.05, 0.35, 0.40, 0.20],
    }
    for genre, p in special.items():
        table[_G[genre]] = p
    assert np.allclose(table.sum(axis=1), 1.0)
    return table


MATURITY_BY_GENRE = _maturity_table()
# Minutes added to a film's runtime by its primary genre (animation and comedy run short).
RUNTIME_SHIFT = np.zeros(len(GENRES))
for _genre, _shift in {
    "animation": -15,
    "comedy": -8,
    "family": -8,
    "horror": -10,
    "war": 20,
}.items():
    RUNTIME_SHIFT[_G[_genre]] = _shift
_SITCOM_GENRES = np.array([_G["comedy"], _G["animation"], _G["family"]])

_ADJECTIVES = """Silent Broken Hidden Last Golden Crimson Frozen Electric Wild Lost Endless Dark
    Bright Savage Quiet Burning Hollow Iron Velvet Secret Northern Distant Midnight Fallen Rising
    Shattered Scarlet Silver Wandering Forgotten Restless Sacred Bitter Hungry Lonely Brave Final
    Infinite Little Blue Paper Glass Stolen Sweet Twisted Crooked Empty Perfect Strange""".split()
_NOUNS = """Harbor Kingdom River Empire Garden Signal Horizon Witness Orchard Frontier Memory
    Shadow Station Island Season Letter Mirror Engine Winter Summer Storm Crown Bridge Forest
    Desert Circus Protocol Echo Voyage Tide Covenant Lantern Canyon Archive Heist Orbit Legacy
    Promise Compass Labyrinth Carnival Rebellion Sanctuary Paradox Requiem Valley Ocean City
    Machine Affair Escape Dynasty Outpost Verdict Cipher Meridian Nocturne""".split()
_FIRST = """Ava Noah Mia Liam Zoe Ethan Lena Omar Ines Kai Nora Hugo Sara Leo Yuki Mateo Chloe
    Arjun Freya Diego Elif Jonas Aiko Rafael Maya Tomas Priya Felix Ingrid Marco Amara Lucas
    Hana Emil Sofia Viktor Nadia Pablo Greta Idris""".split()
_LAST = """Lindqvist Moreau Tanaka Okafor Romero Novak Fischer Haddad Kowalski Bianchi Sato Silva
    Andersen Dubois Kim Mehta Costa Weber Jansen Larsen Ortiz Nakamura Rossi Petrov Schulz
    Yilmaz Park Fernandes Laurent Brennan Duarte Ivanova Holm Varga Akhtar Reyes Berg Conti
    Mendes Quinn""".split()


@dataclass(frozen=True, slots=True)
class WorldSpec:
    seed: int
    titles: int
    members: int
    as_of: date = DEFAULT_AS_OF

    def __post_init__(self) -> None:
        if self.titles < 1 or self.members < 1:
            raise ValueError("a world needs at least one title and one member")
        if self.seed < 0:
            raise ValueError("the seed must be a non-negative integer")


@dataclass(frozen=True, slots=True)
class World:
    spec: WorldSpec
    titles: pa.Table
    members: pa.Table


def title_id(n: int) -> str:
    return f"t{n:06d}"


def member_id(n: int) -> str:
    return f"u{n:07d}"


def generate_world(spec: WorldSpec) -> World:
    """Titles and members for ``spec``; identical output for identical specs."""
    title_stream, member_stream = np.random.SeedSequence(spec.seed).spawn(2)
    titles = generate_titles(
        spec.titles, np.random.Generator(np.random.PCG64(title_stream)), spec.as_of
    )
    members = generate_members(
        spec.members, np.random.Generator(np.random.PCG64(member_stream)), spec.as_of
    )
    return World(spec=spec, titles=titles, members=members)


def generate_titles(n: int, rng: np.random.Generator, as_of: date = DEFAULT_AS_OF) -> pa.Table:
    markets = len(MARKETS)
    # 1-3 distinct genres, the first (most defining) drawn in proportion to GENRE_WEIGHTS: the
    # Gumbel-top-k trick samples without replacement for all titles at once.
    genre_order = _weighted_order(rng, GENRE_WEIGHTS, n)[:, :3]
    genre_count = rng.choice(3, size=n, p=GENRE_COUNT_P) + 1
    primary = genre_order[:, 0]

    is_series = rng.random(n) < SERIES_SHARE
    language = rng.choice(len(LANGUAGES), size=n, p=_normalised(list(LANGUAGE_WEIGHTS.values())))
    maturity = _sample_rows(rng, MATURITY_BY_GENRE[primary])

    film_minutes = np.clip(rng.normal(105.0, 18.0, n) + RUNTIME_SHIFT[primary], 70, 200)
    sitcom = np.isin(primary, _SITCOM_GENRES)
    episode_minutes = np.where(
        sitcom, np.clip(rng.normal(26.0, 4.0, n), 18, 40), np.clip(rng.normal(48.0, 9.0, n), 30, 75)
    )
    runtime = np.rint(np.where(is_series, episode_minutes, film_minutes)).astype(np.int32)
    seasons = np.minimum(rng.geometric(0.45, n), 12).astype(np.int32)
    episodes = (seasons * rng.integers(6, 14, n)).astype(np.int32)

    # Catalogs are young: ages are exponential (mean 12 years) plus a slice of new releases.
    max_age = (as_of - _OLDEST_RELEASE).days
    age = rng.exponential(365.0 * 12, n)
    new = rng.random(n) < NEW_RELEASE_SHARE
    age = np.where(new, rng.uniform(0, 120, n), age)
    release_days = (as_of - _EPOCH).days - np.clip(np.rint(age), 0, max_age).astype(np.int64)

    # Zipf-like demand: a random rank per title, weight rank^-s, normalised to shares.
    ranks = rng.permutation(n) + 1
    popularity = ranks.astype(np.float64) ** -ZIPF_EXPONENT
    popularity /= popularity.sum()

    # A few prolific directors and a long tail, as in real filmographies.
    directors = _director_names(max(1, n // 8), rng)
    director = rng.choice(
        len(directors), size=n, p=_normalised(np.arange(1, len(directors) + 1) ** -0.8)
    )

    # Licensing: a quarter of titles everywhere; otherwise likely where the language is spoken.
    speaks = np.array([[lang in m.languages for m in MARKETS] for lang in LANGUAGES], dtype=bool)[
        language
    ]
    english = np.array([lang == "en" for lang in LANGUAGES])[language]
    p_available = np.where(speaks, 0.95, np.where(english[:, None], 0.75, 0.45))
    available = (rng.random((n, markets)) < p_available) | (rng.random(n) < GLOBAL_LICENCE_SHARE)[
        :, None
    ]
    nowhere = ~available.any(axis=1)
    available[np.flatnonzero(nowhere), rng.integers(0, markets, int(nowhere.sum()))] = True

    names = _title_names(n, rng)
    country_codes = np.array([m.country for m in MARKETS], dtype=object)
    columns = {
        "title_id": pa.array([title_id(i) for i in range(n)], pa.string()),
        "source": pa.array([SYNTHETIC] * n, pa.string()),
        "name": pa.array(names, pa.string()),
        "kind": pa.array(np.where(is_series, "series", "movie").tolist(), pa.string()),
        "genres": _list_array(np.array(GENRES, dtype=object)[genre_order], genre_count),
        "director": pa.array([directors[i] for i in director], pa.string()),
        "language": pa.array([LANGUAGES[i] for i in language], pa.string()),
        "maturity_rating": pa.array([MATURITY_RATINGS[i] for i in maturity], pa.string()),
        "runtime_min": pa.array(runtime, pa.int32()),
        "seasons": pa.array(seasons, pa.int32(), mask=~is_series),
        "episodes": pa.array(episodes, pa.int32(), mask=~is_series),
        "release_date": pa.array(release_days.astype(np.int32), pa.int32()).cast(pa.date32()),
        "popularity": pa.array(popularity, pa.float64()),
        "available_countries": _mask_list_array(country_codes, available),
    }
    return pa.Table.from_pydict(columns, schema=TITLE_SCHEMA)


def generate_members(n: int, rng: np.random.Generator, as_of: date = DEFAULT_AS_OF) -> pa.Table:
    market = rng.choice(len(MARKETS), size=n, p=_normalised([m.member_share for m in MARKETS]))
    plan = rng.choice(len(PLAN_TIERS), size=n, p=PLAN_P)
    # A plan caps the screens; members register some of them. Primary device first.
    device_count = 1 + rng.binomial(PLAN_SCREENS[plan] - 1, 0.45)
    device_order = _weighted_order(rng, DEVICE_WEIGHTS / DEVICE_WEIGHTS.sum(), n)

    # Latent taste: Dirichlet around the catalog's genre mix, concentrated on a few genres.
    tastes = rng.gamma(TASTE_CONCENTRATION * GENRE_WEIGHTS, size=(n, len(GENRES)))
    tastes /= tastes.sum(axis=1, keepdims=True)
    tastes = (1.0 - TASTE_FLOOR) * tastes + TASTE_FLOOR * GENRE_WEIGHTS

    # Most viewing is in the evening; some members watch at lunch, early or late at night.
    habit = rng.choice(4, size=n, p=(0.70, 0.10, 0.05, 0.15))
    centre = np.array([21.0, 13.0, 7.5, 0.5])[habit]
    peak = np.rint(centre + rng.normal(0.0, 1.2, n)).astype(np.int64) % 24
    width = rng.integers(1, 5, n)
    hour_offsets = np.arange(int(width.sum())) - np.repeat(np.cumsum(width) - width, width)
    hours = (np.repeat(peak - width // 2, width) + hour_offsets) % 24

    speaks_english = rng.random(n) < 0.6
    languages = [
        list(MARKETS[m].languages)
        + (["en"] if english and "en" not in MARKETS[m].languages else [])
        for m, english in zip(market.tolist(), speaks_english.tolist(), strict=True)
    ]
    activity = rng.lognormal(0.0, 0.9, n)
    tenure = np.clip(np.rint(rng.exponential(365.0 * 3, n)), 0, (as_of - _FIRST_SIGNUP).days)
    signup_days = (as_of - _EPOCH).days - tenure.astype(np.int64)

    offsets = np.concatenate([[0], np.cumsum(width)]).astype(np.int32)
    columns = {
        "user_id": pa.array([member_id(i) for i in range(n)], pa.string()),
        "source": pa.array([SYNTHETIC] * n, pa.string()),
        "country": pa.array([MARKETS[m].country for m in market], pa.string()),
        "devices": _list_array(np.array(DEVICES, dtype=object)[device_order], device_count),
        "plan_tier": pa.array([PLAN_TIERS[p] for p in plan], pa.string()),
        "languages": pa.array(languages, pa.list_(pa.string())),
        "genre_preferences": pa.FixedSizeListArray.from_arrays(
            pa.array(tastes.astype(np.float32).ravel(), pa.float32()), len(GENRES)
        ).cast(pa.list_(pa.float32())),
        "preferred_hours": pa.ListArray.from_arrays(
            pa.array(offsets, pa.int32()), pa.array(hours.astype(np.int32), pa.int32())
        ),
        "activity": pa.array(activity, pa.float64()),
        "signup_date": pa.array(signup_days.astype(np.int32), pa.int32()).cast(pa.date32()),
    }
    return pa.Table.from_pydict(columns, schema=MEMBER_SCHEMA)


def _normalised(weights: npt.ArrayLike) -> Floats:
    w: Floats = np.asarray(weights, dtype=np.float64)
    normalised: Floats = w / w.sum()
    return normalised


def _weighted_order(rng: np.random.Generator, weights: Floats, rows: int) -> Ints:
    """Per row, a random order of the categories drawn without replacement with ``weights``."""
    keys = np.log(weights)[None, :] + rng.gumbel(size=(rows, len(weights)))
    order: Ints = np.argsort(-keys, axis=1, kind="stable")
    return order


def _sample_rows(rng: np.random.Generator, probabilities: Floats) -> Ints:
    """One category per row from that row's probability vector (inverse CDF)."""
    cdf = np.cumsum(probabilities, axis=1)
    u = rng.random(len(probabilities))[:, None]
    chosen: Ints = np.minimum((u > cdf).sum(axis=1), probabilities.shape[1] - 1)
    return chosen


def _list_array(values: npt.NDArray[np.object_], counts: npt.NDArray[np.int64]) -> pa.ListArray:
    """Rows of a 2-D array cut to their first ``counts[i]`` entries, as an Arrow list column."""
    keep = np.arange(values.shape[1])[None, :] < counts[:, None]
    return _mask_list_array(values, keep)


def _mask_list_array(values: npt.NDArray[np.object_], keep: npt.NDArray[np.bool_]) -> pa.ListArray:
    flat = np.broadcast_to(values, keep.shape)[keep]  # row-major: each row's order is kept
    offsets = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int32)
    return pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()), pa.array(flat.tolist(), pa.string())
    )


def _director_names(count: int, rng: np.random.Generator) -> list[str]:
    pairs = len(_FIRST) * len(_LAST)
    picks = rng.permutation(pairs)[: min(count, pairs)]
    names = [f"{_FIRST[p // len(_LAST)]} {_LAST[p % len(_LAST)]}" for p in picks.tolist()]
    # Past the name pairs, numbered namesakes keep director names distinct.
    names += [f"{names[i % pairs]} {i // pairs + 1}" for i in range(pairs, count)]
    return names


def _title_names(n: int, rng: np.random.Generator) -> list[str]:
    template = rng.integers(0, 5, n).tolist()
    adjective = rng.integers(0, len(_ADJECTIVES), n).tolist()
    noun = rng.integers(0, len(_NOUNS), n).tolist()
    other = rng.integers(0, len(_NOUNS), n).tolist()
    names = []
    for t, a, b, c in zip(template, adjective, noun, other, strict=True):
        adj, first, second = _ADJECTIVES[a], _NOUNS[b], _NOUNS[c]
        if t == 0:
            names.append(f"The {adj} {first}")
        elif t == 1:
            names.append(f"{first} of the {second}")
        elif t == 2:
            names.append(f"{adj} {first}")
        elif t == 3:
            names.append(f"The {first}")
        else:
            names.append(f"{first}: {adj} {second}")
    return names
