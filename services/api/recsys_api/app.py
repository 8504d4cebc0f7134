"""The recommendation API's FastAPI application, built by a factory (nothing happens at import).

    app = create_app(Settings())          # the lifespan connects, loads and starts the log
    uvicorn.run(app, ...)                 # see recsys_api.main

The lifespan opens the channels (they connect lazily), starts the served-list log (Kafka is
connected in the background) and loads the title table in the background: ``/healthz`` answers
at once, ``/readyz`` once the titles are loaded. Nothing it needs must be up for it to start.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

import recsys_api
from recsys.clients.ingest import IngestClient
from recsys.config import Settings
from recsys.inflight import InFlightLimit, Slots
from recsys.log import get_logger
from recsys.models.registry import ModelRegistry
from recsys_api.backends import Backends
from recsys_api.catalog import Catalog
from recsys_api.deps import ApiContext
from recsys_api.metrics import (
    BREAKER_STATE,
    IN_FLIGHT,
    LAST_LISTS,
    LOOP_LAG,
    SERVED_QUEUE,
    SHED,
)
from recsys_api.overload import LoopLag
from recsys_api.recommend import Recommender
from recsys_api.routes import RECOMMENDATIONS_PATH, router
from recsys_api.served import LastLists, ServedLog

__all__ = ["create_app"]

log = get_logger(__name__)

VERSION = "1.0.0"
SHUTDOWN_FLUSH_S = 5.0
DEMO_PLAY_TIMEOUT_S = 5.0
WARM_UP_S = 5.0  # per dependency, before /readyz says ready


def create_app(settings: Settings) -> FastAPI:
    api = settings.api
    slots = Slots(limit=api.max_in_flight)
    lag = LoopLag()
    shed_lag_s = api.shed_lag_ms / 1000

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Built here, on the server's event loop: gRPC channels belong to the loop they are
        # made on.
        context = _context(settings, lag)
        app.state.api = context
        _export_gauges(context, slots)
        LOOP_LAG.set_function(lambda: lag.seconds)
        context.served_log.start()
        tasks = [
            asyncio.create_task(lag.run()),
            asyncio.create_task(context.served_log.run()),
            asyncio.create_task(_load_then_watch(context, settings)),
        ]
        log.info("api started", targets=context.backends.targets, budget_ms=api.budget_ms)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await context.served_log.close(timeout_s=SHUTDOWN_FLUSH_S)
            await context.backends.close()
            await context.ingest.aclose()
            log.info("api stopped")

    app = FastAPI(
        title="recsys recommendations",
        version=VERSION,
        summary="A member's recommendations within 100 ms, down a degradation ladder when "
        "parts fail.",
        description=recsys_api.__doc__ or "",
        lifespan=lifespan,
    )
    app.include_router(router)
    # In front of routing: a refused request costs nothing else.
    app.add_middleware(
        InFlightLimit,
        slots=slots,
        path_prefix=RECOMMENDATIONS_PATH,
        status=429,
        detail="too busy: the limit of requests in flight, or the API's event loop running "
        "late; nothing was done, retry later",
        retry_after_s=api.retry_after_s,
        on_shed=SHED.inc,
        overloaded=lambda: lag.seconds > shed_lag_s,
    )
    return app


def _context(settings: Settings, lag: LoopLag) -> ApiContext:
    api = settings.api
    backends = Backends.connect(settings)
    catalog = Catalog(ModelRegistry.from_settings(settings.models))
    last = LastLists(api.last_lists)
    return ApiContext(
        settings=api,
        backends=backends,
        catalog=catalog,
        recommender=Recommender(
            api,
            backends,
            catalog,
            last,
            redis_prefix=settings.redis.key_prefix,
            loop_lag_s=lambda: lag.seconds,
        ),
        served_log=ServedLog(settings),
        last=last,
        ingest=IngestClient(
            settings.ingest.url,
            api_key=sorted(settings.ingest.api_key_set)[0],
            timeout_s=DEMO_PLAY_TIMEOUT_S,
            max_wait_s=DEMO_PLAY_TIMEOUT_S,
            max_connections=4,
        ),
    )


async def _load_then_watch(context: ApiContext, settings: Settings) -> None:
    catalog = context.catalog
    warm = asyncio.create_task(context.backends.warm_up(WARM_UP_S))
    try:
        await catalog.load_initial(timeout_s=settings.serving.startup_timeout_s)
    except TimeoutError as exc:
        log.error("no title table; /readyz stays 503 until one is published", error=str(exc))
    else:
        log.info("catalog loaded", **catalog.versions)
    log.info("dependencies connected", **await warm)
    warmed = await context.recommender.warm_up(settings.api.default_country)
    log.info("request path warmed up", rounds=warmed)
    context.started.set()
    await catalog.watch(interval_s=settings.serving.reload_interval_s)


def _export_gauges(context: ApiContext, slots: Slots) -> None:
    for name, breaker in context.backends.breakers.items():
        BREAKER_STATE.labels(dependency=name).set_function(partial(getattr, breaker, "value"))
    IN_FLIGHT.set_function(lambda: float(slots.taken))
    SERVED_QUEUE.set_function(lambda: float(context.served_log.queued))
    LAST_LISTS.set_function(lambda: float(len(context.last)))
