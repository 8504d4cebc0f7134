"""Model inputs from interactions: training examples of the two-tower, and each member's
inputs at evaluation or recommendation time, through the one vectorisation
(:mod:`recsys.models.vectorize`).

A training example is one interaction of the training part: the member's titles **before** it
(newest first, at most the spec's history length) are the sequence input, the interaction's
title is the target. User feature columns (batch + real-time registry features) come from a
:class:`UserContext`: point-in-time values per example when the lake has them
(:mod:`recsys_pipelines.learning.lakedata`), registry defaults otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from recsys.models.vectorize import (
    HISTORY_FEATURE,
    FeatureSpec,
    TitleInputs,
    UserInputs,
    vectorize_titles,
    vectorize_users,
)
from recsys_pipelines.learning.interactions import Interactions

__all__ = [
    "NoContext",
    "SequenceExamples",
    "UserContext",
    "catalog_inputs",
    "latest_history",
    "make_spec",
    "member_inputs",
    "sequence_examples",
    "user_inputs",
]

I64 = npt.NDArray[np.int64]


class UserContext(Protocol):
    """Registry user feature columns (without the history) for (member, instant) rows."""

    def columns(self, users: Sequence[str], at_us: I64) -> dict[str, list[Any]]: ...

    def coverage(self, at_us: I64) -> float:
        """The share of the instants ``at_us`` that have point-in-time batch features."""
        ...


@dataclass
class NoContext:
    """No feature data: every user feature is its registry default (e.g. raw rating files)."""

    def columns(self, users: Sequence[str], at_us: I64) -> dict[str, list[Any]]:
        return {}

    def coverage(self, at_us: I64) -> float:
        return 0.0


def make_spec(
    data: Interactions,
    *,
    history_length: int = 50,
    countries: Sequence[str] = (),
    languages: Sequence[str] = (),
    batch_features: bool = True,
) -> FeatureSpec:
    """A spec whose title vocabulary is the interactions' catalog, in the same order (so spec
    index = interactions title index + 1)."""
    return FeatureSpec(
        titles=data.titles,
        countries=tuple(sorted(set(countries))),
        languages=tuple(languages),
        history_length=history_length,
        batch_features=batch_features,
    )


@dataclass
class SequenceExamples:
    users: UserInputs
    targets: I64  # spec title index
    member: npt.NDArray[np.int32]  # interactions member index
    time_us: I64
    extra: dict[str, Any] = field(default_factory=dict)


def _histories(data: Interactions, length: int) -> list[list[str]]:
    """Per row of ``data``: the member's titles before it, newest first (at most ``length``)."""
    titles = data.titles
    out: list[list[str]] = []
    previous_user = -1
    seen: list[str] = []
    for user, title in zip(data.user.tolist(), data.title.tolist(), strict=True):
        if user != previous_user:
            seen, previous_user = [], user
        out.append(seen[::-1][:length])
        seen.append(titles[title])
    return out


def _others(data: Interactions, length: int, seed: int, dropout: float) -> list[list[str]]:
    """Per row of ``data``: up to ``length`` of the member's *other* titles, in time order
    newest first, each dropped with probability ``dropout`` (at least one kept), drawn at
    random (a denoising view of the whole profile, as in Mult-DAE)."""
    rng = np.random.default_rng(seed)
    titles = data.titles
    out: list[list[str]] = []
    for mine in data.per_user():
        ids = mine.tolist()
        for j in range(len(ids)):
            rest = ids[:j] + ids[j + 1 :]
            if dropout > 0 and len(rest) > 1:
                kept = rng.random(len(rest)) >= dropout
                if not kept.any():
                    kept[rng.integers(len(rest))] = True
                rest = [t for t, k in zip(rest, kept.tolist(), strict=True) if k]
            if len(rest) > length:
                keep = np.sort(rng.choice(len(rest), length, replace=False))
                rest = [rest[int(i)] for i in keep]
            out.append([titles[t] for t in rest[::-1]])
    return out


def sequence_examples(
    train: Interactions,
    spec: FeatureSpec,
    context: UserContext,
    *,
    history: str = "previous",
    dropout: float = 0.0,
    seed: int = 0,
) -> SequenceExamples:
    """One example per training interaction, features as of just before it. ``history`` is
    ``previous`` (the titles before it: what serving sees at that instant) or ``others`` (a
    random sample of the member's other titles, before or after: every example sees a whole
    profile, which generalises better when the order carries little signal), of which each
    title is dropped with probability ``dropout``."""
    if history == "previous":
        histories = _histories(train, spec.history_length)
    elif history == "others":
        histories = _others(train, spec.history_length, seed, dropout)
    else:
        raise ValueError(f"unknown history mode {history!r}")
    users = [train.users[u] for u in train.user.tolist()]
    columns = context.columns(users, train.time_us)
    columns[HISTORY_FEATURE] = histories
    inputs = vectorize_users(spec, columns, len(users))
    targets = spec.title_index([train.titles[t] for t in train.title.tolist()])
    return SequenceExamples(inputs, targets, train.user, train.time_us)


def latest_history(
    seen: Interactions, members: npt.NDArray[np.integer], length: int
) -> list[list[str]]:
    """Each member's latest titles in ``seen``, newest first."""
    per_user = seen.per_user()
    return [[seen.titles[t] for t in per_user[int(m)][::-1][:length]] for m in members]


def member_inputs(
    seen: Interactions,
    members: npt.NDArray[np.integer],
    spec: FeatureSpec,
    context: UserContext,
    at_us: I64,
) -> UserInputs:
    """Inputs of ``members`` (indices into ``seen.users``) at the instants ``at_us``."""
    users = [seen.users[int(m)] for m in members]
    return user_inputs(
        users, latest_history(seen, members, spec.history_length), spec, context, at_us
    )


def user_inputs(
    users: Sequence[str],
    histories: Sequence[Sequence[str]],
    spec: FeatureSpec,
    context: UserContext,
    at_us: I64,
) -> UserInputs:
    """Inputs of members given their recent titles (newest first) at the instants ``at_us``."""
    columns = context.columns(list(users), at_us)
    columns[HISTORY_FEATURE] = list(histories)
    return vectorize_users(spec, columns, len(users))


def catalog_inputs(spec: FeatureSpec, title_columns: Mapping[str, Sequence[Any]]) -> TitleInputs:
    """Inputs of every spec title, with a row 0 (unknown, all defaults) first so that row i is
    spec index i; ``title_columns`` are aligned with ``spec.titles``."""
    ids = ["", *spec.titles]
    columns = {name: [None, *values] for name, values in title_columns.items()}
    inputs = vectorize_titles(spec, columns, ids)
    return TitleInputs(np.arange(len(ids), dtype=np.int64), inputs.dense)
