"""One gRPC serving process: listen, load, say SERVING, answer, and stop gracefully.

    asyncio.run(serve(app, name="ranker", address="127.0.0.1:50053", metrics_port=9203,
                      settings=settings.serving))

The listener opens at once with the standard health service (``grpc.health.v1``) saying
NOT_SERVING, and server reflection on; ``app.start()`` connects the stores and loads the models,
then health says SERVING. On SIGTERM (or SIGINT): health says NOT_SERVING, calls are still
answered for ``drain_s`` (so load balancers stop sending), the listener closes, calls in flight
get up to ``grace_s`` to finish, then ``app.close()`` and exit 0.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from recsys.config import ServingSettings, Settings
from recsys.log import configure, get_logger
from recsys.metrics import serve_metrics
from recsys.serving.metrics import HANDLED, READY

__all__ = ["ServingApp", "run", "serve"]

log = get_logger(__name__)


class ServingApp(Protocol):
    """What a serving service gives :func:`serve`."""

    @property
    def service_names(self) -> Sequence[str]:
        """Full names of the gRPC services it registers (health and reflection list them)."""
        ...

    def register(self, server: grpc.aio.Server) -> None:
        """Add its servicers to ``server``."""

    async def start(self) -> None:
        """Connect and load until it can answer (raise to give up)."""

    async def run(self) -> None:
        """Background work (version reloads) until cancelled."""

    async def close(self) -> None:
        """Release connections after the last call."""


async def serve(
    app: ServingApp,
    *,
    name: str,
    address: str,
    metrics_port: int,
    settings: ServingSettings,
) -> None:
    try:  # first: a port in use is then a one-line exit with nothing else to undo
        serve_metrics(metrics_port)
    except OSError as exc:
        raise SystemExit(f"{name}: cannot serve /metrics on port {metrics_port}: {exc}") from None
    server = grpc.aio.server(
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        # gRPC sets SO_REUSEPORT by default: a second server on the port would share it silently.
        options=[("grpc.so_reuseport", 0)],
    )
    app.register(server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = [*app.service_names]
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    reflection.enable_server_reflection([*names, health_name, reflection.SERVICE_NAME], server)
    for service in ("", *names):
        await health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        server.add_insecure_port(address)
    except RuntimeError as exc:
        raise SystemExit(f"{name}: cannot listen on {address}: {exc}") from None
    await server.start()
    READY.labels(service=name).set(0)
    log.info("listening", address=address, metrics_port=metrics_port)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    background: asyncio.Task[None] | None = None
    # app.start() bounds its own waits by settings.startup_timeout_s and says what it waited for.
    starting = asyncio.create_task(app.start())
    stop_wait = asyncio.create_task(stopping.wait())
    await asyncio.wait({starting, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    if starting.done():
        error = starting.exception()
        if error is not None:
            await server.stop(0)
            raise SystemExit(f"{name}: could not start: {error or type(error).__name__}")
        for service in ("", *names):
            await health.set(service, health_pb2.HealthCheckResponse.SERVING)
        READY.labels(service=name).set(1)
        log.info("serving")
        background = asyncio.create_task(app.run())
        await stop_wait
    else:
        starting.cancel()

    log.info("stopping", drain_s=settings.drain_s, grace_s=settings.grace_s)
    await health.enter_graceful_shutdown()
    READY.labels(service=name).set(0)
    await asyncio.sleep(settings.drain_s)
    await server.stop(settings.grace_s)
    if background is not None:
        background.cancel()
        await asyncio.gather(background, return_exceptions=True)
    await app.close()
    # What the process answered, by status code: a call cut off mid-way would show as CANCELLED
    # here (the handler wrapper counts a handler interrupted by the stop that way).
    log.info("stopped", calls=calls_by_code(name))


def calls_by_code(service: str) -> dict[str, int]:
    """Calls this process answered, by status code (from its own metrics)."""
    counts: dict[str, int] = {}
    for metric in HANDLED.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("service") == service:
                code = sample.labels["code"]
                counts[code] = counts.get(code, 0) + int(sample.value)
    return counts


def run(name: str, make_app: Callable[[Settings], ServingApp]) -> None:
    """A service's ``main()``: settings, logging, then :func:`serve` on the address and metrics
    port of its settings section (``settings.<name>``)."""
    settings = Settings()
    configure(settings.log, service=name)
    section = getattr(settings, name)
    asyncio.run(
        serve(
            make_app(settings),
            name=name,
            address=section.address,
            metrics_port=section.metrics_port,
            settings=settings.serving,
        )
    )
