"""The fallback lists: their file in the registry (model ``fallbacks``) and their Redis keys.

The pipelines compute them (``recsys_pipelines.fallbacks``); the API reads them: from Redis at
the fallback rung of the degradation ladder, and from the file baked into its image at the
emergency rung. Both layouts are contracts (docs/models.md, docs/redis-keys.md)::

    lists = FallbackLists.from_json(version.file(FALLBACKS_FILE).read_bytes())
    lists.for_country("US", genre="drama")[:10]

Redis holds one **generation** per publication (the registry version id), and a pointer:

    rec:v1:fallback:current            string  the generation readers use, e.g. "v0003"
    rec:v1:fallback:{gen}:global       list    title ids, best first
    rec:v1:fallback:{gen}:{cc}         list    titles available in country cc
    rec:v1:fallback:{gen}:{cc}:{genre} list    the same, of one genre

A writer fills a new generation completely, then moves the pointer: a reader that follows the
pointer never sees a half-written set of lists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from recsys.catalog import ID_PATTERN

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "FALLBACKS_FILE",
    "FALLBACKS_FORMAT",
    "FALLBACKS_MODEL",
    "FallbackFormatError",
    "FallbackLists",
    "current_key",
    "list_key",
    "read_fallback",
]

FALLBACKS_MODEL = "fallbacks"
FALLBACKS_FILE = "fallbacks.json"
FALLBACKS_FORMAT = 1

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_GENERATION = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_GENRE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class FallbackFormatError(ValueError):
    """A fallbacks file that does not follow the format (one line)."""


@dataclass(frozen=True)
class FallbackLists:
    """Title ids, best first: global, per country, per country and genre."""

    as_of: date
    window_days: int
    top_n: int
    global_titles: tuple[str, ...]
    countries: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    country_genres: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)

    def for_country(self, country: str, genre: str | None = None) -> tuple[str, ...]:
        """The list for a country (and genre); the global list when it has none."""
        if genre is None:
            return self.countries.get(country, self.global_titles)
        return self.country_genres.get(country, {}).get(genre, ())

    def to_json(self) -> bytes:
        body = {
            "format": FALLBACKS_FORMAT,
            "as_of": self.as_of.isoformat(),
            "window_days": self.window_days,
            "top_n": self.top_n,
            "global": list(self.global_titles),
            "countries": {c: list(v) for c, v in sorted(self.countries.items())},
            "country_genres": {
                c: {g: list(v) for g, v in sorted(genres.items())}
                for c, genres in sorted(self.country_genres.items())
            },
        }
        return json.dumps(body, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> FallbackLists:
        """Parse and check a fallbacks file; FallbackFormatError (one line) if it is not one."""
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict) or raw.get("format") != FALLBACKS_FORMAT:
                raise ValueError(f"not a format {FALLBACKS_FORMAT} fallbacks document")
            top_n = raw["top_n"]
            if not isinstance(top_n, int) or top_n < 1:
                raise ValueError(f"bad top_n {top_n!r}")
            countries = {
                _checked(c, _COUNTRY, "country"): _ids(v, top_n)
                for c, v in _dict(raw["countries"]).items()
            }
            country_genres = {
                _checked(c, _COUNTRY, "country"): {
                    _checked(g, _GENRE, "genre"): _ids(v, top_n) for g, v in _dict(genres).items()
                }
                for c, genres in _dict(raw["country_genres"]).items()
            }
            return cls(
                as_of=date.fromisoformat(raw["as_of"]),
                window_days=int(raw["window_days"]),
                top_n=top_n,
                global_titles=_ids(raw["global"], top_n),
                countries=countries,
                country_genres=country_genres,
            )
        except (ValueError, KeyError, TypeError) as exc:
            detail = " ".join(str(exc).split())
            raise FallbackFormatError(f"not a fallbacks file: {detail}") from None

    def keys(self, prefix: str, generation: str) -> dict[str, tuple[str, ...]]:
        """Every Redis list of this set: key -> title ids."""
        lists = {list_key(prefix, generation): self.global_titles}
        for country, titles in self.countries.items():
            lists[list_key(prefix, generation, country)] = titles
        for country, genres in self.country_genres.items():
            for genre, titles in genres.items():
                lists[list_key(prefix, generation, country, genre)] = titles
        return lists


def current_key(prefix: str) -> str:
    """The key naming the generation readers use."""
    return f"{prefix}:fallback:current"


def list_key(
    prefix: str, generation: str, country: str | None = None, genre: str | None = None
) -> str:
    """``{prefix}:fallback:{gen}:global``, ``...:{gen}:{cc}`` or ``...:{gen}:{cc}:{genre}``."""
    _checked(generation, _GENERATION, "generation")
    if country is None:
        if genre is not None:
            raise ValueError("a genre list needs a country")
        return f"{prefix}:fallback:{generation}:global"
    _checked(country, _COUNTRY, "country")
    if genre is None:
        return f"{prefix}:fallback:{generation}:{country}"
    return f"{prefix}:fallback:{generation}:{country}:{_checked(genre, _GENRE, 'genre')}"


async def read_fallback(
    redis: Redis, prefix: str, country: str | None = None, genre: str | None = None, k: int = 100
) -> list[str]:
    """The first ``k`` titles of a list of the current generation ([] when there is none):
    two round trips, the pointer and the list."""
    generation = await redis.get(current_key(prefix))
    if generation is None:
        return []
    gen = generation.decode() if isinstance(generation, bytes) else str(generation)
    titles = await redis.lrange(list_key(prefix, gen, country, genre), 0, k - 1)
    return [t.decode() if isinstance(t, bytes) else str(t) for t in titles]


def _checked(value: object, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"bad {what} {value!r}")
    return value


def _dict(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {type(value).__name__}")
    return value


def _ids(value: object, top_n: int) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > top_n:
        raise ValueError(f"expected a list of at most {top_n} title ids")
    ids = tuple(_checked(v, ID_PATTERN, "title id") for v in value)
    if len(set(ids)) != len(ids):
        raise ValueError("a list repeats a title")
    return ids
