"""The ingest service's FastAPI application, built by a factory (nothing happens at import).

    app = create_app(Settings())          # the lifespan starts and closes the Kafka producer
    uvicorn.run(app, ...)                 # see recsys_ingest.main

Tests pass their own settings (a unique topic: ``settings.ingest.topic``) or publisher.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

import recsys_ingest
from recsys.config import Settings
from recsys.inflight import InFlightLimit, Slots
from recsys.log import get_logger
from recsys_ingest.deps import IngestContext
from recsys_ingest.metrics import IngestMetrics
from recsys_ingest.publisher import EventPublisher
from recsys_ingest.routes import EVENTS_PATH, router
from recsys_ingest.schema import json_schema_components

__all__ = ["LOCAL_DEV_KEY", "create_app"]

log = get_logger(__name__)

LOCAL_DEV_KEY = "local-dev-key"
VERSION = "1.0.0"


def create_app(
    settings: Settings,
    *,
    publisher: EventPublisher | None = None,
    metrics: IngestMetrics | None = None,
) -> FastAPI:
    """The app; its lifespan starts ``publisher`` (default: one built from ``settings``)."""
    api_keys = settings.ingest.api_key_set
    if settings.environment == "kubernetes" and LOCAL_DEV_KEY in api_keys:
        raise ValueError("RECSYS_INGEST__API_KEYS still holds the local default key; set real keys")
    if settings.ingest.producer_batch_bytes < 2 * settings.ingest.max_event_bytes:
        # A record batch must hold the largest event (its protobuf is smaller than its JSON).
        raise ValueError(
            "RECSYS_INGEST__PRODUCER_BATCH_BYTES must be at least twice "
            "RECSYS_INGEST__MAX_EVENT_BYTES"
        )
    context = IngestContext(
        settings=settings.ingest,
        api_keys=tuple(sorted(k.encode() for k in api_keys)),
        publisher=publisher or EventPublisher(settings),
        metrics=metrics or IngestMetrics(),
    )
    metrics = context.metrics
    slots = Slots(limit=settings.ingest.max_requests_in_flight)
    metrics.kafka_ready.set_function(lambda: float(context.publisher.ready[0]))
    metrics.requests_in_flight.set_function(lambda: float(slots.taken))
    metrics.requests_awaiting_kafka.set_function(lambda: float(context.publisher.awaiting))
    metrics.waiting_batches.set_function(lambda: float(context.publisher.most_waiting_batches()))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await context.publisher.start()
        log.info(
            "ingest started",
            topic=context.publisher.topic,
            kafka=settings.kafka.bootstrap_servers,
            ready=context.publisher.ready[0],
        )
        try:
            yield
        finally:
            await context.publisher.stop()
            log.info("ingest stopped")

    app = FastAPI(
        title="recsys ingest",
        version=VERSION,
        summary="Batched member events from client SDKs into Kafka (schema v1).",
        lifespan=lifespan,
    )
    app.state.ingest = context
    app.include_router(router)

    def count_shed() -> None:
        metrics.requests_shed.inc()
        metrics.requests.labels(status="503").inc()

    # In front of routing, auth and the route: a refused request costs none of them.
    # 503, not 429: the limit is the server's capacity, shared by every client, not a quota a
    # client exceeded (RFC 9110 15.6.4 vs RFC 6585 4).
    app.add_middleware(
        InFlightLimit,
        slots=slots,
        path_prefix=EVENTS_PATH,
        status=503,
        detail=f"the service has {slots.limit} requests in flight, its limit; "
        "nothing was read or accepted, retry the batch later",
        retry_after_s=settings.ingest.retry_after_s,
        on_shed=count_shed,
    )

    def openapi() -> dict[str, Any]:
        # The events route reads its body itself; publish the body's schema for SDKs and fuzzers.
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=recsys_ingest.__doc__ or "",
                routes=app.routes,
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                json_schema_components()
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
