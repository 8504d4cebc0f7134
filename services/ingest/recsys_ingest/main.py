"""Entry point: ``recsys-ingest`` or ``python -m recsys_ingest``.

Reads settings from the environment (``RECSYS_INGEST__PORT``, ``RECSYS_KAFKA__PORT``, ...) and
serves the app with uvicorn on uvloop and httptools, one worker. On SIGTERM or Ctrl-C uvicorn
stops accepting connections, lets in-flight requests finish, then the lifespan flushes the
producer.
"""

from __future__ import annotations

from recsys.config import Settings
from recsys.http_server import serve_http
from recsys.log import configure
from recsys_ingest.app import create_app

__all__ = ["main"]

GRACEFUL_SHUTDOWN_S = 15


def main() -> None:
    settings = Settings()
    configure(settings.log, service="ingest")
    app = create_app(settings)
    serve_http(
        app,
        host=settings.ingest.host,
        port=settings.ingest.port,
        graceful_shutdown_s=GRACEFUL_SHUTDOWN_S,
    )


if __name__ == "__main__":
    main()
