"""Source genres (MovieLens, MovieTweetings/IMDb) mapped to the platform's 18 GENRES.

The table is the documentation (docs/data.md repeats it): names that are a genre of ours map to
it, close relatives map to the nearest one, and formats or non-genres (Short, IMAX, Adult, "no
genres listed") are dropped. A name missing from the table is dropped too and counted, so a new
genre in a future dataset shows up in the import report instead of vanishing silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from recsys.catalog import GENRES

__all__ = ["GENRE_MAP", "map_genres"]

# Lower-case source name -> one of GENRES, or None to drop it.
GENRE_MAP: dict[str, str | None] = {
    "action": "action",
    "adventure": "adventure",
    "animation": "animation",
    "children": "family",  # ml-latest, ml-25m
    "children's": "family",  # ml-100k, ml-1m
    "family": "family",
    "comedy": "comedy",
    "crime": "crime",
    "film-noir": "crime",  # noir is crime drama
    "documentary": "documentary",
    "news": "documentary",
    "reality-tv": "documentary",
    "drama": "drama",
    "biography": "drama",  # biopics are dramas
    "history": "drama",  # period dramas; the war films among them are also tagged War
    "fantasy": "fantasy",
    "horror": "horror",
    "music": "music",
    "musical": "music",
    "mystery": "mystery",
    "romance": "romance",
    "sci-fi": "sci_fi",
    "sport": "sport",
    "thriller": "thriller",
    "war": "war",
    "western": "western",
    # Formats and non-genres: nothing to learn a taste from.
    "short": None,
    "imax": None,
    "adult": None,
    "talk-show": None,
    "game-show": None,
    "(no genres listed)": None,
    "unknown": None,
}
assert all(g is None or g in GENRES for g in GENRE_MAP.values())


def map_genres(names: Iterable[str], unmapped: Counter[str] | None = None) -> tuple[str, ...]:
    """Our genres for a title's source genres, first occurrence first, without repeats.

    Names absent from :data:`GENRE_MAP` are dropped and counted in ``unmapped``.
    """
    out: list[str] = []
    for name in names:
        key = name.strip().lower()
        if not key:
            continue
        if key not in GENRE_MAP:
            if unmapped is not None:
                unmapped[name.strip()] += 1
            continue
        genre = GENRE_MAP[key]
        if genre is not None and genre not in out:
            out.append(genre)
    return tuple(out)
