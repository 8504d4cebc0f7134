"""The Iceberg lake: one factory for the SQL catalog every stage reads and writes through.

    catalog = load_catalog(settings.lake)
    table = catalog.load_table(table_identifier(settings.lake, "dim_titles"))

The catalog is pyiceberg's ``SqlCatalog`` (SQLite in the warehouse folder unless
``RECSYS_LAKE__CATALOG_URI`` names another database) over a ``file://`` warehouse. The factory
creates the warehouse folder and the namespace when they are missing, so a fresh checkout needs no
setup step before the first writer runs.
"""

from __future__ import annotations

from pyiceberg.catalog.sql import SqlCatalog

from recsys.config import LakeSettings

__all__ = ["CATALOG_NAME", "load_catalog", "table_identifier"]

CATALOG_NAME = "recsys"


def load_catalog(settings: LakeSettings) -> SqlCatalog:
    """The lake's catalog, with its warehouse folder and namespace created if missing."""
    warehouse = settings.warehouse.expanduser().resolve()
    warehouse.mkdir(parents=True, exist_ok=True)
    catalog = SqlCatalog(CATALOG_NAME, uri=settings.catalog_url, warehouse=warehouse.as_uri())
    catalog.create_namespace_if_not_exists(settings.namespace)
    return catalog


def table_identifier(settings: LakeSettings, name: str) -> tuple[str, str]:
    """``(namespace, name)``: tables are always addressed inside the configured namespace."""
    return (settings.namespace, name)
