"""Entry point: ``recsys-api`` or ``python -m recsys_api``.

Reads settings from the environment (``RECSYS_API__PORT``, ``RECSYS_API__BUDGET_MS``, ...) and
serves the app with uvicorn on uvloop and httptools, one worker. On SIGTERM uvicorn stops
accepting connections and lets requests in flight finish; the lifespan then sends the queued
served lists and closes the channels.
"""

from __future__ import annotations

from recsys.config import Settings
from recsys.http_server import serve_http
from recsys.log import configure
from recsys_api.app import create_app

__all__ = ["main"]

GRACEFUL_SHUTDOWN_S = 10


def main() -> None:
    settings = Settings()
    configure(settings.log, service="api")
    serve_http(
        create_app(settings),
        host=settings.api.host,
        port=settings.api.port,
        graceful_shutdown_s=GRACEFUL_SHUTDOWN_S,
    )


if __name__ == "__main__":
    main()
