"""Title lookups the features need: genres and runtime by title_id.

The stream job asks ``catalog.lookup(title_id)`` once per event, so lookups are in memory:
:class:`DictCatalog` for tests, :class:`CassandraCatalog` which loads the whole ``titles`` table
(migration 0002, ~15k rows) at start and reloads it periodically. An unknown title gives
``None``: it contributes no genre and, with no runtime, can never count as abandoned.

    catalog = DictCatalog({"tt1": TitleInfo(("drama",), 6000)})
    catalog.lookup("tt1").runtime_sec  # 6000
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from recsys.clients.cassandra import CassandraClient
from recsys.log import get_logger

__all__ = ["CassandraCatalog", "Catalog", "DictCatalog", "TitleInfo"]

log = get_logger(__name__)


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


_SELECT_TITLES = "SELECT title_id, genres, runtime_min FROM {ks}.titles"


class CassandraCatalog(DictCatalog):
    """The ``titles`` table of the client's keyspace, held in memory; call :meth:`load` to refresh.

    A missing table (migration 0002 not applied yet) or an unreachable node leaves the previous
    contents in place and logs a warning: features of unknown titles degrade, the job keeps going.
    """

    def __init__(self, client: CassandraClient, keyspace: str) -> None:
        super().__init__()
        self._client = client
        self._select = _SELECT_TITLES.format(ks=keyspace)

    def load(self) -> int:
        """Blocking full reload; returns the number of titles now held."""
        try:
            rows = self._client.session.execute(self._select)
            titles = {
                row["title_id"]: TitleInfo(
                    genres=tuple(row["genres"] or ()),
                    runtime_sec=float(row["runtime_min"]) * 60.0 if row["runtime_min"] else None,
                )
                for row in rows
            }
        except Exception as exc:  # the job must run without a catalog
            log.warning("catalog_load_failed", error=str(exc), kept=len(self))
            return len(self)
        self.replace(titles)
        log.info("catalog_loaded", titles=len(titles))
        return len(titles)
