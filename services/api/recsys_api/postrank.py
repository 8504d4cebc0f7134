"""Post-ranking: the ranker's order turned into the list a member sees.

    picks = post_rank(ranked, titles, country="US", params=PostRankParams(k=10, diversity=0.2,
                      new_release_boost=0.1, max_per_genre=4))

In order:

1. **Availability**: only titles the member's country may show (and that the title table
   knows) are kept, whatever came before: rights are not a ranking signal.
2. **New-release boost**: ``new_release_boost`` is added to the score of a title released in
   the last ``new_release_days`` (90) days.
3. **Diversity and caps**, greedily, one slot at a time: the pick is the candidate with the best
   score minus ``diversity`` times the share of the list so far already in its primary genre
   (its first genre), among those whose primary genre has fewer than ``max_per_genre`` titles in
   the list. With ``diversity`` 0 and no cap this is the ranker's order.
4. **Never short**: when the caps leave fewer than ``k`` eligible titles, the rest of the list is
   filled with the best remaining ones, caps aside: a member gets ``k`` titles whenever ``k``
   available ones were ranked.

Each pick says why it is where it is: ``ranked`` (its place in the ranker's order),
``new release`` (the boost lifted it), ``diversity`` (picked ahead of a better-scored title of a
genre the list already had enough of).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Pick", "PostRankParams", "TitleInfo", "post_rank"]


@dataclass(frozen=True, slots=True)
class TitleInfo:
    genres: tuple[str, ...]  # most defining first
    release_age_days: int  # -1 when unknown
    countries: frozenset[str]

    @property
    def primary_genre(self) -> str:
        return self.genres[0] if self.genres else ""


@dataclass(frozen=True, slots=True)
class PostRankParams:
    k: int
    diversity: float = 0.0  # 0..1
    new_release_boost: float = 0.0  # added to the score
    max_per_genre: int = 0  # 0: no cap
    new_release_days: int = 90

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, not {self.k}")
        if not 0 <= self.diversity <= 1:
            raise ValueError(f"diversity must be in [0, 1], not {self.diversity}")
        if self.new_release_boost < 0 or self.max_per_genre < 0:
            raise ValueError("new_release_boost and max_per_genre cannot be negative")


@dataclass(frozen=True, slots=True)
class Pick:
    title_id: str
    score: float  # the ranker's score plus any boost
    reason: str


def post_rank(
    ranked: Sequence[tuple[str, float]],
    titles: Mapping[str, TitleInfo],
    *,
    country: str,
    params: PostRankParams,
) -> list[Pick]:
    """The member's list of at most ``params.k`` titles from ``ranked`` (title, score), best
    first."""
    pool: list[tuple[str, float, bool, str]] = []  # title, score, boosted, primary genre
    seen: set[str] = set()
    for title_id, score in ranked:
        info = titles.get(title_id)
        if info is None or country not in info.countries or title_id in seen:
            continue
        seen.add(title_id)
        boosted = 0 <= info.release_age_days <= params.new_release_days
        bonus = params.new_release_boost if boosted else 0.0
        pool.append((title_id, score + bonus, boosted and bonus > 0, info.primary_genre))
    best_first = sorted(pool, key=lambda p: -p[1])
    picks: list[Pick] = []
    per_genre: Counter[str] = Counter()
    taken: set[str] = set()
    while len(picks) < params.k and len(taken) < len(best_first):
        choice = _next(best_first, taken, per_genre, len(picks), params)
        capped = choice is None
        if choice is None:  # every remaining title is over its genre's cap: fill, caps aside
            choice = next(p for p in best_first if p[0] not in taken)
        title_id, score, boosted, genre = choice
        top = next(p for p in best_first if p[0] not in taken)
        reason = (
            "diversity"
            if top[0] != title_id and not capped
            else "new release"
            if boosted
            else "ranked"
        )
        picks.append(Pick(title_id, score, reason))
        taken.add(title_id)
        per_genre[genre] += 1
    return picks


def _next(
    best_first: Sequence[tuple[str, float, bool, str]],
    taken: set[str],
    per_genre: Counter[str],
    size: int,
    params: PostRankParams,
) -> tuple[str, float, bool, str] | None:
    chosen, chosen_value = None, float("-inf")
    for candidate in best_first:
        title_id, score, _, genre = candidate
        if title_id in taken:
            continue
        if params.max_per_genre and per_genre[genre] >= params.max_per_genre:
            continue
        share = per_genre[genre] / size if size else 0.0
        value = score - params.diversity * share
        if value > chosen_value:
            chosen, chosen_value = candidate, value
        if params.diversity == 0:
            break  # best_first order: the first eligible one wins
    return chosen
