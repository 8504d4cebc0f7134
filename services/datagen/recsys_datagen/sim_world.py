"""The stored world as arrays the behaviour model samples from (no I/O here).

:meth:`SimWorld.from_tables` turns ``dim_titles``/``dim_members`` rows (from the lake or
Cassandra) into dense numpy arrays once, so choosing a member or a title during the simulation
is a ``searchsorted`` on a precomputed cumulative weight instead of a Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from recsys.catalog import GENRES
from recsys.markets import MARKETS
from recsys_datagen.world import GENRE_WEIGHTS

__all__ = ["DIURNAL", "SimWorld"]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

# Share of a day's viewing by local hour (0-23): a night trough and an evening peak.
DIURNAL: Floats = np.array(
    [
        3,
        2,
        1.2,
        0.8,
        0.6,
        0.6,
        1,
        1.6,
        2,
        2.4,
        2.8,
        3.2,
        3.8,
        3.8,
        3.6,
        3.8,
        4.2,
        5,
        6.4,
        8,
        9,
        8.6,
        6.8,
        4.6,
    ],
    dtype=np.float64,
)
DIURNAL = DIURNAL / DIURNAL.sum()
PREFERRED_HOUR_BOOST = 3.0  # a member is this much more likely to start a session in their hours
_DEFAULT_HOURS = (19, 20, 21, 22)
_OFFSETS = {m.country: m.utc_offset_min for m in MARKETS}


@dataclass(frozen=True, slots=True)
class SimWorld:
    title_ids: list[str]
    title_names: list[str]
    title_genres: list[tuple[int, ...]]  # indices into GENRES
    genre_matrix: Floats  # (titles, genres): 1/k on each of a title's k genres
    popularity: Floats  # sums to 1
    runtime_sec: Ints
    is_series: Bools
    countries: tuple[str, ...]
    available: Bools  # (titles, countries)
    member_ids: list[str]
    member_country: Ints  # index into countries
    member_devices: list[tuple[str, ...]]  # primary first
    member_tastes: Floats  # (members, genres), rows sum to 1
    member_hours: Bools  # (members, 24) preferred local hours
    member_activity: Floats
    country_utc_offset_min: Ints
    # Caches of arrays derived from the ones above, filled on first use. Not init fields, so
    # dataclasses.replace() (a world with other tastes or availability) starts them empty.
    _hour_cdf: dict[int, Floats] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _popularity_cdf: dict[tuple[int, float], Floats] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def title_count(self) -> int:
        return len(self.title_ids)

    @property
    def member_count(self) -> int:
        return len(self.member_ids)

    @classmethod
    def from_tables(cls, titles: pa.Table, members: pa.Table) -> SimWorld:
        if titles.num_rows == 0 or members.num_rows == 0:
            raise ValueError("the world has no titles or no members")
        genre_index = {g: i for i, g in enumerate(GENRES)}
        title_genres = [
            tuple(genre_index[g] for g in genres if g in genre_index)
            for genres in titles.column("genres").to_pylist()
        ]
        genre_matrix = np.zeros((titles.num_rows, len(GENRES)))
        for row, genres in enumerate(title_genres):
            if genres:
                genre_matrix[row, list(genres)] = 1.0 / len(genres)
            else:  # an imported title without a known genre reads as the catalog average
                genre_matrix[row] = GENRE_WEIGHTS
        popularity = np.asarray(titles.column("popularity").to_numpy(), dtype=np.float64)
        popularity = popularity / popularity.sum()

        member_countries = members.column("country").to_pylist()
        title_countries = titles.column("available_countries").to_pylist()
        countries = tuple(sorted(set(member_countries)))
        country_index = {c: i for i, c in enumerate(countries)}
        available = np.zeros((titles.num_rows, len(countries)), dtype=bool)
        for row, codes in enumerate(title_countries):
            for code in codes:
                col = country_index.get(code)
                if col is not None:
                    available[row, col] = True

        tastes = np.tile(GENRE_WEIGHTS, (members.num_rows, 1))
        for row, prefs in enumerate(members.column("genre_preferences").to_pylist()):
            if prefs is not None and len(prefs) == len(GENRES):
                tastes[row] = prefs
        tastes /= tastes.sum(axis=1, keepdims=True)
        hours = np.zeros((members.num_rows, 24), dtype=bool)
        for row, member_hours in enumerate(members.column("preferred_hours").to_pylist()):
            hours[row, list(member_hours or _DEFAULT_HOURS)] = True
        activity = pc.fill_null(members.column("activity"), 1.0).to_numpy()

        return cls(
            title_ids=titles.column("title_id").to_pylist(),
            title_names=titles.column("name").to_pylist(),
            title_genres=title_genres,
            genre_matrix=genre_matrix,
            popularity=popularity,
            runtime_sec=titles.column("runtime_min").to_numpy().astype(np.int64) * 60,
            is_series=np.asarray(pc.equal(titles.column("kind"), "series").to_numpy(), dtype=bool),
            countries=countries,
            available=available,
            member_ids=members.column("user_id").to_pylist(),
            member_country=np.array([country_index[c] for c in member_countries], dtype=np.int64),
            member_devices=[tuple(d) or ("web",) for d in members.column("devices").to_pylist()],
            member_tastes=tastes,
            member_hours=hours,
            member_activity=np.asarray(activity, dtype=np.float64),
            country_utc_offset_min=np.array(
                [_OFFSETS.get(c, 0) for c in countries], dtype=np.int64
            ),
        )

    def member_cdf(self, utc_hour: int) -> Floats:
        """Cumulative weight of each member starting a session in this UTC hour.

        activity x the diurnal curve at the member's local hour x a boost in their own hours.
        """
        cdf = self._hour_cdf.get(utc_hour)
        if cdf is None:
            offsets_h = self.country_utc_offset_min[self.member_country] // 60
            local = (utc_hour + offsets_h) % 24
            preferred = self.member_hours[np.arange(self.member_count), local]
            weight = (
                self.member_activity * DIURNAL[local] * (1.0 + PREFERRED_HOUR_BOOST * preferred)
            )
            cdf = np.cumsum(weight)
            self._hour_cdf[utc_hour] = cdf
        return cdf

    def popularity_cdf(self, country: int, exponent: float) -> Floats:
        """Cumulative popularity^exponent over the titles available in ``country``."""
        key = (country, exponent)
        cdf = self._popularity_cdf.get(key)
        if cdf is None:
            cdf = np.cumsum(self.popularity**exponent * self.available[:, country])
            self._popularity_cdf[key] = cdf
        return cdf
