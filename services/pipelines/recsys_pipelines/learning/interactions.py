"""Interactions (one per member and title) and the held-out split of offline evaluation.

    data = Interactions.build(user_ids, title_ids, times_us, catalog_ids, ratings=..., ...)
    train, test = temporal_holdout(data, fraction=0.2, min_interactions=3)

An **interaction** is a member playing or rating a title: every play and every rating counts, so
an imported MovieLens or MovieTweetings rating is one (the importer turns it into a play, a
complete and a rate). Repeats of a (member, title) pair collapse into one interaction at its
first instant, keeping whether any playback completed and the highest rating.

**The split** (per-member temporal holdout): for each member with at least ``min_interactions``
interactions, the latest ``fraction`` of them (at least one, rounded down; ties in time broken
by title id, so the split is deterministic) are held out; the rest is the training part. Members
with fewer interactions stay whole in training and are not evaluated. Each held-out interaction
is later in time than every training interaction of its member, so a model never sees what it is
scored on, nor anything after it, from that member.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

__all__ = ["Interactions", "temporal_holdout"]

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Interactions:
    """Columns of (member, title) interactions over fixed vocabularies, sorted by member then
    time then title. ``titles`` is the whole catalog (titles with no interaction included)."""

    users: tuple[str, ...]
    titles: tuple[str, ...]
    user: I32  # index into users
    title: I32  # index into titles
    time_us: I64  # first instant, µs since the epoch (UTC)
    rating: npt.NDArray[np.int8]  # highest rating 1-5, 0 when never rated
    completed: npt.NDArray[np.bool_]

    @classmethod
    def build(
        cls,
        user_ids: Sequence[str],
        title_ids: Sequence[str],
        time_us: Sequence[int] | I64,
        catalog: Sequence[str] = (),
        *,
        ratings: Sequence[int] | npt.NDArray[np.integer] | None = None,
        completed: Sequence[bool] | npt.NDArray[np.bool_] | None = None,
        users: Sequence[str] = (),
    ) -> Interactions:
        """Collapse raw events (one row per play or rating) into interactions.

        ``catalog`` and ``users`` extend the vocabularies (titles nobody played yet, members
        with no interaction); every id of the rows is added to them.
        """
        n = len(user_ids)
        if len(title_ids) != n or len(time_us) != n:
            raise ValueError("user_ids, title_ids and time_us must have the same length")
        user_vocab = sorted(set(users) | set(user_ids))
        title_vocab = sorted(set(catalog) | set(title_ids))
        u_index = {u: i for i, u in enumerate(user_vocab)}
        t_index = {t: i for i, t in enumerate(title_vocab)}
        u = np.fromiter((u_index[x] for x in user_ids), np.int64, n)
        t = np.fromiter((t_index[x] for x in title_ids), np.int64, n)
        times = np.asarray(time_us, dtype=np.int64)
        rate = np.zeros(n, np.int8) if ratings is None else np.asarray(ratings, np.int8)
        done = np.zeros(n, np.bool_) if completed is None else np.asarray(completed, np.bool_)
        # One row per pair: the first instant, the best rating, completed if any row was.
        pair = u * len(title_vocab) + t
        order = np.lexsort((times, pair))
        pair_sorted = pair[order]
        starts = (
            np.flatnonzero(np.r_[True, pair_sorted[1:] != pair_sorted[:-1]])
            if n
            else np.zeros(0, np.int64)
        )
        first = order[starts]
        best = np.maximum.reduceat(rate[order], starts) if n else rate
        any_done = np.logical_or.reduceat(done[order], starts) if n else done
        return cls._sorted(
            tuple(user_vocab),
            tuple(title_vocab),
            u[first].astype(np.int32),
            t[first].astype(np.int32),
            times[first],
            best.astype(np.int8),
            any_done.astype(np.bool_),
        )

    @classmethod
    def _sorted(
        cls,
        users: tuple[str, ...],
        titles: tuple[str, ...],
        user: I32,
        title: I32,
        time_us: I64,
        rating: npt.NDArray[np.int8],
        completed: npt.NDArray[np.bool_],
    ) -> Interactions:
        order = np.lexsort((title, time_us, user))
        return cls(
            users,
            titles,
            user[order],
            title[order],
            time_us[order],
            rating[order],
            completed[order],
        )

    def __len__(self) -> int:
        return int(self.user.shape[0])

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_titles(self) -> int:
        return len(self.titles)

    def take(self, mask: npt.NDArray[np.bool_]) -> Interactions:
        """The rows where ``mask`` is true, same vocabularies (order is kept)."""
        return replace(
            self,
            user=self.user[mask],
            title=self.title[mask],
            time_us=self.time_us[mask],
            rating=self.rating[mask],
            completed=self.completed[mask],
        )

    def concat(self, other: Interactions) -> Interactions:
        """Both sets of rows (same vocabularies), sorted again."""
        if other.users != self.users or other.titles != self.titles:
            raise ValueError("interactions over different vocabularies cannot be concatenated")
        return self._sorted(
            self.users,
            self.titles,
            np.concatenate([self.user, other.user]),
            np.concatenate([self.title, other.title]),
            np.concatenate([self.time_us, other.time_us]),
            np.concatenate([self.rating, other.rating]),
            np.concatenate([self.completed, other.completed]),
        )

    def matrix(self) -> tuple[I32, I32]:
        """(user, title) index pairs, e.g. for a sparse member x title matrix."""
        return self.user, self.title

    def per_user(self) -> list[I32]:
        """Each member's titles in time order (an empty array for members with none)."""
        bounds = np.searchsorted(self.user, np.arange(self.n_users + 1))
        return [self.title[bounds[i] : bounds[i + 1]] for i in range(self.n_users)]

    def title_counts(self) -> I64:
        """Interactions per title (the popularity of the training data)."""
        return np.bincount(self.title, minlength=self.n_titles).astype(np.int64)


def temporal_holdout(
    data: Interactions, *, fraction: float = 0.2, min_interactions: int = 3
) -> tuple[Interactions, Interactions]:
    """(training part, held-out part): each eligible member's latest ``fraction`` held out."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout fraction must be in (0, 1), not {fraction}")
    if min_interactions < 2:
        raise ValueError("a member needs at least 2 interactions to hold one out")
    counts = np.bincount(data.user, minlength=data.n_users)
    held = np.where(counts >= min_interactions, np.maximum(1, np.floor(counts * fraction)), 0)
    # Rows are sorted by member then time then title: position from each member's end.
    ends = np.cumsum(counts)
    from_end = ends[data.user] - np.arange(len(data))  # 1 for a member's latest row
    test = from_end <= held[data.user]
    return data.take(~test), data.take(test)
