"""The one feature vectorisation of the learned models, used by training and by serving.

Training (``recsys_pipelines.learning``) and the serving code path (:mod:`recsys.models.inference`,
the candidates and ranker services, ``recsys recommend-offline``) turn registry features into
model inputs only through these functions, with the :class:`FeatureSpec` published beside the
models, so the two cannot drift. numpy only: serving images import it.

    spec = FeatureSpec.from_json(path.read_bytes())
    users = vectorize_users(spec, {"recently_watched_title_ids": [[...]], "country": ["US"], ...})
    titles = vectorize_titles(spec, {"title_genres": [[...]], ...}, title_ids)

Inputs are **columns** (registry feature name -> one value per entity); a missing column or a
``None`` value is the registry default, so a member the feature store knows nothing about is a
valid input. Ids outside the spec's vocabularies map to index 0 (unknown).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recsys.catalog import DEVICES, GENRES, PLAN_TIERS
from recsys.features import FEATURES

__all__ = [
    "CROSS_DIM",
    "HISTORY_FEATURE",
    "SPEC_FILE",
    "FeatureSpec",
    "ItemNeighbours",
    "TitleInputs",
    "UserInputs",
    "cross_features",
    "title_feature_names",
    "user_feature_names",
    "vectorize_titles",
    "vectorize_users",
]

SPEC_FILE = "feature_spec.json"
# The member's recent titles, newest first: the user tower's sequence input.
HISTORY_FEATURE = "recently_watched_title_ids"
SPEC_VERSION = 1

_GENRE_INDEX = {g: i for i, g in enumerate(GENRES)}
F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

# Registry features the user inputs read (batch, then real-time), and the title inputs.
_USER_BATCH = (
    "genre_affinity_vector",
    "content_completion_rate_p50",
    "avg_session_duration_min",
    "preferred_time_of_day",
    "language_preferences",
    "country",
    "subscription_tier",
    "watch_hours_30d",
    "watch_hours_90d",
    "watch_hours_365d",
)
_USER_REALTIME = (
    "current_genre_last_30min",
    "session_duration_sec",
    "plays_abandoned_last_1hr",
    "content_completion_rate_today",
    "current_device_type",
    "search_terms_last_5min",
    HISTORY_FEATURE,
)
_TITLE = ("title_genres", "release_age_days", "title_popularity_30d", "title_completion_rate_90d")


def user_feature_names() -> list[str]:
    """Registry names the user inputs read (what a manifest lists as the model's features)."""
    return [*_USER_BATCH, *_USER_REALTIME]


def title_feature_names() -> list[str]:
    return list(_TITLE)


@dataclass(frozen=True)
class FeatureSpec:
    """Vocabularies and sizes of the inputs; serialised to ``feature_spec.json`` in a version.

    ``titles[i]`` has index ``i + 1`` in every title input (0 = padding or unknown).
    """

    titles: tuple[str, ...]
    countries: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    history_length: int = 50
    # False when the model was trained without the members' batch features (the lake's daily
    # snapshots covered too little of its training data): they are then read as their defaults
    # in training and serving alike, so a value serving has cannot meet a model that never saw one.
    batch_features: bool = True
    version: int = SPEC_VERSION
    _title_index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._title_index.update({t: i + 1 for i, t in enumerate(self.titles)})

    # -- sizes of the vectors ---------------------------------------------------------------
    @property
    def n_titles(self) -> int:
        """Embedding rows needed: the titles plus index 0."""
        return len(self.titles) + 1

    @property
    def user_dense_dim(self) -> int:
        # genres 18, 9 numbers, time of day 3, languages, current genre 18 + 1
        return len(GENRES) + 9 + 3 + len(self.languages) + len(GENRES) + 1

    @property
    def user_cat_sizes(self) -> tuple[int, int, int]:
        """Vocabulary sizes (with 0 = unknown) of country, plan tier and current device."""
        return (len(self.countries) + 1, len(PLAN_TIERS) + 1, len(DEVICES) + 1)

    @property
    def title_dense_dim(self) -> int:
        return len(GENRES) + 5

    def title_index(self, title_ids: Sequence[str]) -> I64:
        get = self._title_index.get
        return np.fromiter((get(t, 0) for t in title_ids), np.int64, len(title_ids))

    # -- serialisation ----------------------------------------------------------------------
    def to_json(self) -> bytes:
        data = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> FeatureSpec:
        try:
            raw = json.loads(data)
            if raw.get("version") != SPEC_VERSION:
                raise ValueError(
                    f"feature spec version {raw.get('version')!r} is not {SPEC_VERSION}"
                )
            return cls(
                titles=tuple(str(t) for t in raw["titles"]),
                countries=tuple(str(c) for c in raw["countries"]),
                languages=tuple(str(x) for x in raw["languages"]),
                history_length=int(raw["history_length"]),
                batch_features=bool(raw.get("batch_features", True)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"corrupt feature spec: {exc}") from None


@dataclass(frozen=True)
class UserInputs:
    history: I64  # [n, history_length] title indices, newest first, 0-padded
    dense: F32  # [n, user_dense_dim]
    cat: I64  # [n, 3] country, plan tier, device

    def as_feeds(self) -> dict[str, npt.NDArray[Any]]:
        return {"history": self.history, "user_dense": self.dense, "user_cat": self.cat}

    def take(self, rows: I64) -> UserInputs:
        return UserInputs(self.history[rows], self.dense[rows], self.cat[rows])


@dataclass(frozen=True)
class TitleInputs:
    title: I64  # [n] title index (0 unknown)
    dense: F32  # [n, title_dense_dim]

    def take(self, rows: I64) -> TitleInputs:
        return TitleInputs(self.title[rows], self.dense[rows])


def _column(columns: Mapping[str, Sequence[Any]], name: str, n: int) -> list[Any]:
    default = FEATURES[name].default
    values = columns.get(name)
    if values is None:
        return [default] * n
    if len(values) != n:
        raise ValueError(f"feature column {name} has {len(values)} values, expected {n}")
    return [default if v is None else v for v in values]


def _numbers(columns: Mapping[str, Sequence[Any]], name: str, n: int) -> npt.NDArray[np.float64]:
    return np.asarray([float(v) for v in _column(columns, name, n)], np.float64)


def _vocab_index(values: Sequence[Any], vocab: Sequence[str]) -> I64:
    index = {v: i + 1 for i, v in enumerate(vocab)}
    return np.fromiter((index.get(str(v), 0) for v in values), np.int64, len(values))


def _log1p(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.log1p(np.maximum(x, 0.0))


def vectorize_users(
    spec: FeatureSpec, columns: Mapping[str, Sequence[Any]], n: int | None = None
) -> UserInputs:
    """Model inputs of ``n`` members from registry feature columns (see the module doc)."""
    if n is None:
        n = len(next(iter(columns.values()))) if columns else 0
    if not spec.batch_features:
        columns = {k: v for k, v in columns.items() if k not in _USER_BATCH}
    dense = np.zeros((n, spec.user_dense_dim), np.float32)
    col = 0
    affinity = _column(columns, "genre_affinity_vector", n)
    dense[:, : len(GENRES)] = np.asarray([list(v) for v in affinity], np.float64).reshape(
        n, len(GENRES)
    )
    col = len(GENRES)
    history_titles = _column(columns, HISTORY_FEATURE, n)
    numbers = [
        _numbers(columns, "content_completion_rate_p50", n),
        _log1p(_numbers(columns, "avg_session_duration_min", n)) / 5.0,
        _log1p(_numbers(columns, "watch_hours_30d", n)) / 5.0,
        _log1p(_numbers(columns, "watch_hours_90d", n)) / 5.0,
        _log1p(_numbers(columns, "watch_hours_365d", n)) / 5.0,
        _log1p(_numbers(columns, "session_duration_sec", n)) / 10.0,
        _log1p(_numbers(columns, "plays_abandoned_last_1hr", n)),
        _numbers(columns, "content_completion_rate_today", n),
        np.log1p(np.asarray([len(v) for v in history_titles], np.float64)) / 4.0,
    ]
    for values in numbers:
        dense[:, col] = values
        col += 1
    hour = _numbers(columns, "preferred_time_of_day", n)
    known = hour >= 0
    dense[:, col] = np.where(known, np.sin(2 * math.pi * hour / 24.0), 0.0)
    dense[:, col + 1] = np.where(known, np.cos(2 * math.pi * hour / 24.0), 0.0)
    dense[:, col + 2] = known
    col += 3
    lang_index = {lang: i for i, lang in enumerate(spec.languages)}
    for row, langs in enumerate(_column(columns, "language_preferences", n)):
        for rank, lang in enumerate(langs):
            i = lang_index.get(lang)
            if i is not None:
                dense[row, col + i] = 1.0 / (1 + rank)
    col += len(spec.languages)
    for row, genre in enumerate(_column(columns, "current_genre_last_30min", n)):
        i = _GENRE_INDEX.get(genre)
        if i is not None:
            dense[row, col + i] = 1.0
    col += len(GENRES)
    dense[:, col] = (
        np.asarray(
            [len(v) for v in _column(columns, "search_terms_last_5min", n)], np.float32
        ).clip(0, 5)
        / 5.0
    )
    history = np.zeros((n, spec.history_length), np.int64)
    for row, titles in enumerate(history_titles):
        idx = [i for i in spec.title_index(list(titles)[: spec.history_length * 2]) if i > 0]
        idx = idx[: spec.history_length]
        history[row, : len(idx)] = idx
    cat = np.stack(
        [
            _vocab_index(_column(columns, "country", n), spec.countries),
            _vocab_index(_column(columns, "subscription_tier", n), PLAN_TIERS),
            _vocab_index(_column(columns, "current_device_type", n), DEVICES),
        ],
        axis=1,
    ).reshape(n, 3)
    return UserInputs(history, dense, cat)


def vectorize_titles(
    spec: FeatureSpec, columns: Mapping[str, Sequence[Any]], title_ids: Sequence[str]
) -> TitleInputs:
    """Model inputs of the titles ``title_ids`` from their registry feature columns."""
    n = len(title_ids)
    dense = np.zeros((n, spec.title_dense_dim), np.float32)
    for row, genres in enumerate(_column(columns, "title_genres", n)):
        for rank, genre in enumerate(genres):
            i = _GENRE_INDEX.get(genre)
            if i is not None:
                # The first genre is the most defining one.
                dense[row, i] = 1.0 if rank == 0 else 0.5
    col = len(GENRES)
    age = _numbers(columns, "release_age_days", n)
    dense[:, col] = np.where(age >= 0, _log1p(age / 365.0) / 4.0, 0.0)
    dense[:, col + 1] = age < 0
    popularity = _numbers(columns, "title_popularity_30d", n)
    dense[:, col + 2] = np.log10(np.maximum(popularity, 1e-7)) / 7.0 + 1.0
    dense[:, col + 3] = popularity > 0
    dense[:, col + 4] = _numbers(columns, "title_completion_rate_90d", n)
    return TitleInputs(spec.title_index(title_ids), dense)


@dataclass(frozen=True)
class ItemNeighbours:
    """Sparse item-to-item weights (EASE's, Steck 2019): for each title j (spec index), the
    titles i whose presence in a member's history most raises j's score, with those weights.

    A member's neighbour score of candidate j is the sum of ``weight[j, m]`` over the m whose
    ``index[j, m]`` is in the member's history: EASE's own score, cut to the strongest
    ``index.shape[1]`` neighbours of each title. The ranker reads it as a cross feature, so the
    served list gets the item-to-item evidence a two-tower misses on whole-profile signals."""

    index: I64  # [n_titles, m] spec indices, 0 = no neighbour
    weight: F32  # [n_titles, m]

    @classmethod
    def empty(cls, n_titles: int) -> ItemNeighbours:
        return cls(np.zeros((n_titles, 1), np.int64), np.zeros((n_titles, 1), np.float32))

    def save(self, path: Path) -> None:
        with path.open("wb") as f:
            np.savez(f, index=self.index, weight=self.weight)

    @classmethod
    def load(cls, path: Path, n_titles: int) -> ItemNeighbours:
        with np.load(path, allow_pickle=False) as data:
            index, weight = data["index"].astype(np.int64), data["weight"].astype(np.float32)
        if index.shape != weight.shape or index.ndim != 2 or index.shape[0] != n_titles:
            raise ValueError(
                f"{path.name} has shapes {index.shape} and {weight.shape}, spec wants "
                f"{n_titles} rows"
            )
        if index.size and (index.min() < 0 or index.max() >= n_titles):
            raise ValueError(f"{path.name} holds title indices outside the spec")
        return cls(index, weight)

    def scores(self, history: I64, candidates: I64) -> F32:
        """Neighbour score of each of one member's ``candidates`` (spec indices) given the
        member's ``history`` (spec indices, 0 padded)."""
        if candidates.shape[0] == 0:
            return np.zeros(0, np.float32)
        known = np.zeros(self.index.shape[0], bool)
        known[history] = True
        known[0] = False
        hit = known[self.index[candidates]]
        return np.asarray((self.weight[candidates] * hit).sum(axis=1), np.float32)


# Columns of cross_features; the ranker's ONNX input "cross" has this width.
CROSS_DIM = 6


def _list_starts(rank: I64, n: int) -> tuple[I64, I64]:
    """(start of each member's list, list number of each row) from the 0-based ranks."""
    starts = np.flatnonzero(rank == 0)
    if n and (starts.size == 0 or starts[0] != 0):
        raise ValueError("candidate ranks must start at 0 for each member's list")
    return starts, np.searchsorted(starts, np.arange(n), side="right") - 1


def _within_list_z(values: npt.NDArray[np.float64], starts: I64, rows: I64) -> F32:
    counts = np.diff(np.append(starts, values.shape[0]))
    mean = np.add.reduceat(values, starts) / counts
    centred = values - mean[rows]
    std = np.sqrt(np.add.reduceat(centred**2, starts) / counts)
    return np.asarray(centred / (std[rows] + 1e-6), np.float32)


def cross_features(
    user: UserInputs,
    title: TitleInputs,
    retrieval_score: F32,
    rank: I64 | None = None,
    neighbour_score: F32 | None = None,
) -> F32:
    """Member x candidate features of the ranker, row by row (``user`` and ``title`` aligned):
    the two-tower score's gap to the best candidate of the member's list and the rank in that
    list (not the raw score: these two do not move when a retraining shifts the scores, so a
    ranker trained beside one two-tower version serves with the next), genre affinity . title
    genres, whether the title has the genre the member is watching now, and the item-neighbour
    score (:class:`ItemNeighbours`; zeros when absent) raw and as a z-score within the member's
    list. ``rank`` is the 0-based position in the member's candidate list, best first; rows of
    one member must be contiguous (``None``: one list, in row order)."""
    genres = title.dense[:, : len(GENRES)]
    weight = genres.sum(axis=1, keepdims=True).clip(min=1.0)
    affinity = (user.dense[:, : len(GENRES)] * genres / weight).sum(axis=1)
    current_start = user.dense.shape[1] - 1 - len(GENRES)
    current = user.dense[:, current_start : current_start + len(GENRES)]
    current_match = (current * (genres > 0)).sum(axis=1)
    score = retrieval_score.astype(np.float64)
    n = score.shape[0]
    rank = np.arange(n, dtype=np.int64) if rank is None else rank
    neighbour = (
        np.zeros(n, np.float64) if neighbour_score is None else neighbour_score.astype(np.float64)
    )
    if n == 0:
        return np.zeros((0, CROSS_DIM), np.float32)
    starts, list_of_row = _list_starts(rank, n)
    best = np.maximum.reduceat(score, starts)
    gap = score - best[list_of_row]
    return np.stack(
        [
            gap * 10.0,
            np.log1p(rank) / 5.0,
            affinity,
            current_match,
            np.clip(neighbour, -1.0, 5.0),
            _within_list_z(neighbour, starts, list_of_row),
        ],
        axis=1,
    ).astype(np.float32)
