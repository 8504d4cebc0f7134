"""Title lookups the real-time features need: genres and runtime by title_id.

The stream job asks ``catalog.lookup(title_id)`` once per event, so lookups are in memory:
:class:`DictCatalog` here (tests, and the training-set builder, which loads it from the lake), and
the worker's ``recsys_features.catalog.CassandraCatalog``, which loads the whole ``titles`` table
and reloads it periodically. An unknown title gives ``None``: it contributes no genre and, with no
runtime, can never count as abandoned.

    catalog = DictCatalog({"tt1": TitleInfo(("drama",), 6000)})
    catalog.lookup("tt1").runtime_sec  # 6000
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Catalog", "DictCatalog", "TitleInfo"]


@dataclass(frozen=True, slots=True)
class TitleInfo:
    genres: tuple[str, ...]  # most defining first; genres[0] is the title's primary genre
    runtime_sec: float | None  # None when unknown

    @property
    def primary_genre(self) -> str | None:
        return self.genres[0] if self.genres else None


class Catalog(Protocol):
    def lookup(self, title_id: str) -> TitleInfo | None: ...


class DictCatalog:
    """A fixed in-memory catalog."""

    def __init__(self, titles: Mapping[str, TitleInfo] | None = None) -> None:
        self._titles: dict[str, TitleInfo] = dict(titles or {})

    def lookup(self, title_id: str) -> TitleInfo | None:
        return self._titles.get(title_id)

    def replace(self, titles: Mapping[str, TitleInfo]) -> None:
        """Swap the whole catalog at once (readers never see a half-loaded one)."""
        self._titles = dict(titles)

    def __len__(self) -> int:
        return len(self._titles)
