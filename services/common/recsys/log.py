"""Structured logging: one ``configure()`` call per process, then ``get_logger(__name__)``.

``format="json"`` emits one JSON object per line (for Kubernetes log collectors); ``"console"`` is
for people. Standard-library loggers (aiokafka, cassandra-driver, grpc) go through the same
renderer so a process writes one format.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from recsys.config import LogSettings

__all__ = ["configure", "get_logger"]


def configure(settings: LogSettings, *, service: str) -> None:
    """Route structlog and the standard library through one renderer at ``settings.level``."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if settings.format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str, **initial: Any) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name, **initial)
    return logger
