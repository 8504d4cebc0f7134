"""What the API holds in memory from the registry: every title and the emergency list.

    catalog = Catalog(registry)
    await catalog.load_initial(timeout_s=300)          # before /readyz says ready
    task = asyncio.create_task(catalog.watch(interval_s=1.0))
    titles = catalog.titles()                          # one reference per request

Titles (``title_features``, published daily by the pipelines): each title's name, genres,
release age and countries, for post-ranking and for the answer. Thousands of titles cost one
dictionary lookup each, never a call. The emergency list (``fallbacks``, the global list, best
first) is the last rung of the ladder: it is what this process answers when nothing else can,
so it lives here, not in a store. Both are hot-reloaded when the pipelines publish a new version
(recsys.serving.reload).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from recsys.features.title_table import TITLE_FEATURES_MODEL, TitleFeatureTable
from recsys.models.fallbacks import FALLBACKS_FILE, FALLBACKS_MODEL, FallbackLists
from recsys.models.registry import ModelRegistry, ModelVersion
from recsys.serving.reload import CurrentVersion
from recsys_api.postrank import TitleInfo

__all__ = ["Catalog", "Titles"]

SERVICE = "api"


@dataclass(frozen=True)
class Titles:
    """One ``title_features`` version: per title its post-ranking facts and its name."""

    version: str
    info: dict[str, TitleInfo]
    names: dict[str, str]

    @classmethod
    def of(cls, table: TitleFeatureTable) -> Titles:
        genres = table.columns["title_genres"]
        ages = table.columns["release_age_days"]
        countries = table.columns["available_countries"]
        info = {
            title_id: TitleInfo(
                genres=tuple(genres[row]),
                release_age_days=int(ages[row]),
                countries=frozenset(countries[row]),
            )
            for row, title_id in enumerate(table.title_ids)
        }
        names = {title_id: table.name(row) for row, title_id in enumerate(table.title_ids)}
        return cls(table.version, info, names)

    @classmethod
    def load(cls, version: ModelVersion) -> Titles:
        return cls.of(TitleFeatureTable.load(version))


def _load_fallbacks(version: ModelVersion) -> FallbackLists:
    return FallbackLists.from_json(version.file(FALLBACKS_FILE).read_bytes())


class Catalog:
    def __init__(self, registry: ModelRegistry) -> None:
        self._titles: CurrentVersion[Titles] = CurrentVersion(
            registry, TITLE_FEATURES_MODEL, Titles.load, service=SERVICE
        )
        self._fallbacks: CurrentVersion[FallbackLists] = CurrentVersion(
            registry, FALLBACKS_MODEL, _load_fallbacks, service=SERVICE
        )

    @property
    def ready(self) -> bool:
        return self._titles.version is not None

    def titles(self) -> Titles | None:
        return self._titles.peek()

    def fallbacks(self) -> FallbackLists | None:
        return self._fallbacks.peek()

    @property
    def versions(self) -> dict[str, str]:
        return {
            "titles": self._titles.version or "",
            "fallbacks": self._fallbacks.version or "",
        }

    async def load_initial(self, *, timeout_s: float) -> None:
        """Wait for the titles (post-ranking needs them); the emergency list is taken if there
        is one, else picked up by :meth:`watch` when the pipelines publish it."""
        await self._titles.load_initial(timeout_s=timeout_s)
        with contextlib.suppress(Exception):  # logged and counted by CurrentVersion
            await self._fallbacks.refresh()

    async def watch(self, *, interval_s: float) -> None:
        await asyncio.gather(
            self._titles.watch(interval_s=interval_s),
            self._fallbacks.watch(interval_s=interval_s),
        )
