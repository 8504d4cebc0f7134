"""How the platform's FastAPI services run: uvicorn on uvloop and httptools, one worker.

    serve_http(create_app(settings), host=..., port=..., graceful_shutdown_s=15)

On SIGTERM or Ctrl-C uvicorn stops accepting connections and lets requests in flight finish
(for at most ``graceful_shutdown_s``); then the app's lifespan runs its shutdown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from starlette.types import ASGIApp

__all__ = ["serve_http"]


def serve_http(app: ASGIApp, *, host: str, port: int, graceful_shutdown_s: int) -> None:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,  # a line per request costs more than the request at 100+ req/s
        log_config=None,  # keep recsys.log's configuration
        server_header=False,
        timeout_graceful_shutdown=graceful_shutdown_s,
    )
    uvicorn.Server(config).run()
