"""Entry point: ``python -m recsys_bronze`` runs the writer until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal

from recsys.config import Settings
from recsys.log import configure
from recsys.metrics import serve_metrics
from recsys_bronze.settings import BronzeSettings, load_bronze_settings
from recsys_bronze.writer import BronzeWriter

__all__ = ["main"]


async def _serve(settings: Settings, bronze: BronzeSettings) -> None:
    writer = BronzeWriter(settings, bronze)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Graceful: flush the pending micro-batch, commit it, leave the group.
        loop.add_signal_handler(sig, writer.stop)
    await writer.run()


def main() -> None:
    settings = Settings()
    bronze = load_bronze_settings()
    configure(settings.log, service="bronze")
    serve_metrics(settings.metrics.port)
    asyncio.run(_serve(settings, bronze))
