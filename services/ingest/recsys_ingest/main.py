"""Entry point: ``recsys-ingest`` or ``python -m recsys_ingest``.

Reads settings from the environment (``RECSYS_INGEST__PORT``, ``RECSYS_KAFKA__PORT``, ...) and
serves the app with uvicorn on uvloop and httptools, one worker. On SIGTERM or Ctrl-C uvicorn
stops accepting connections, lets in-flight requests finish, then the lifespan flushes the
producer.
"""

from __future__ import annotations

import uvicorn

from recsys.config import Settings
from recsys.log import configure
from recsys_ingest.app import create_app

__all__ = ["main"]

GRACEFUL_SHUTDOWN_S = 15


def main() -> None:
    settings = Settings()
    configure(settings.log, service="ingest")
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.ingest.host,
        port=settings.ingest.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,  # a line per request costs more than the request at 100+ req/s
        log_config=None,  # keep recsys.log's configuration
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
