"""The worker's title lookups: the ``titles`` table of Cassandra, held in memory.

:class:`CassandraCatalog` loads the whole ``titles`` table (migration 0002, ~15k rows) at start
and reloads it periodically; the lookup itself (``recsys.features.titles``) is shared with the
training-set builder, so both fold events with the same title data.
"""

from __future__ import annotations

from recsys.clients.cassandra import CassandraClient
from recsys.features.titles import Catalog, DictCatalog, TitleInfo
from recsys.log import get_logger

__all__ = ["CassandraCatalog", "Catalog", "DictCatalog", "TitleInfo"]

log = get_logger(__name__)

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
