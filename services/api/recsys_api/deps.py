"""FastAPI dependencies: what a route needs, read from the app built by :func:`create_app`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from recsys.clients.ingest import IngestClient
from recsys.config import ApiSettings
from recsys_api.backends import Backends
from recsys_api.catalog import Catalog
from recsys_api.recommend import Recommender
from recsys_api.served import LastLists, ServedLog

__all__ = ["ApiContext", "Context"]


@dataclass(frozen=True, slots=True)
class ApiContext:
    """Everything the routes use, built once per app (``app.state.api``)."""

    settings: ApiSettings
    backends: Backends
    catalog: Catalog
    recommender: Recommender
    served_log: ServedLog
    last: LastLists
    ingest: IngestClient
    # Set once the title table is loaded (or given up on) and the dependencies were connected.
    started: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ready(self) -> bool:
        return self.started.is_set() and self.catalog.ready


# `async def`: FastAPI runs a plain `def` dependency in a worker thread.
async def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.api
    return context


Context = Annotated[ApiContext, Depends(get_context)]
