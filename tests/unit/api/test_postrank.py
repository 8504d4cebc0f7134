"""Post-ranking: availability, the new-release boost, diversity and per-genre caps, and a list
never shorter than k when k available titles were ranked."""

from __future__ import annotations

from collections import Counter

import pytest

from recsys_api.postrank import PostRankParams, TitleInfo, post_rank

US = frozenset({"US"})


def _titles(spec: dict[str, tuple[str, int]]) -> dict[str, TitleInfo]:
    return {t: TitleInfo((genre,), age, US) for t, (genre, age) in spec.items()}


RANKED = [(f"d{i}", 1.0 - i * 0.01) for i in range(8)] + [
    (f"c{i}", 0.85 - i * 0.01) for i in range(4)
]
TITLES = _titles(
    {**{f"d{i}": ("drama", 400) for i in range(8)}, **{f"c{i}": ("comedy", 400) for i in range(4)}}
)


def test_no_knobs_keeps_the_rankers_order() -> None:
    picks = post_rank(RANKED, TITLES, country="US", params=PostRankParams(k=5))
    assert [p.title_id for p in picks] == ["d0", "d1", "d2", "d3", "d4"]
    assert {p.reason for p in picks} == {"ranked"}


def test_unavailable_and_unknown_titles_never_appear() -> None:
    titles = dict(TITLES)
    titles["d0"] = TitleInfo(("drama",), 400, frozenset({"FR"}))
    del titles["d1"]
    picks = post_rank(RANKED, titles, country="US", params=PostRankParams(k=3))
    assert [p.title_id for p in picks] == ["d2", "d3", "d4"]


def test_a_genre_cap_makes_room_for_others_and_says_why() -> None:
    picks = post_rank(RANKED, TITLES, country="US", params=PostRankParams(k=6, max_per_genre=3))
    genres = Counter(TITLES[p.title_id].primary_genre for p in picks)
    assert genres == {"drama": 3, "comedy": 3}
    assert [p.title_id for p in picks[:3]] == ["d0", "d1", "d2"]
    assert picks[3].reason == "diversity"


def test_diversity_interleaves_genres_in_proportion_to_its_weight() -> None:
    mild = post_rank(RANKED, TITLES, country="US", params=PostRankParams(k=6, diversity=0.05))
    strong = post_rank(RANKED, TITLES, country="US", params=PostRankParams(k=6, diversity=1.0))
    comedies = [sum(p.title_id.startswith("c") for p in picks) for picks in (mild, strong)]
    assert comedies[0] < comedies[1]
    assert strong[1].title_id == "c0"  # second slot: the other genre at once


def test_new_releases_are_lifted_by_the_boost() -> None:
    titles = dict(TITLES)
    titles["c3"] = TitleInfo(("comedy",), 10, US)  # released 10 days ago, ranked last
    picks = post_rank(
        RANKED, titles, country="US", params=PostRankParams(k=3, new_release_boost=0.5)
    )
    assert picks[0].title_id == "c3"
    assert picks[0].reason == "new release"
    assert picks[0].score == pytest.approx(0.82 + 0.5)


def test_caps_never_shorten_the_list_below_k() -> None:
    picks = post_rank(RANKED, TITLES, country="US", params=PostRankParams(k=10, max_per_genre=2))
    assert len(picks) == 10
    assert len({p.title_id for p in picks}) == 10


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        PostRankParams(k=0)
    with pytest.raises(ValueError, match="diversity must be in"):
        PostRankParams(k=3, diversity=2)
