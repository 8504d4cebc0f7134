"""Run an import: store the catalog rows, then replay the events through the ingest API.

The catalog goes first, through :func:`recsys_datagen.store.store_dimensions` (the world
generator's code path), so every title an event names is in the catalog before the event
arrives. Events are sent in event-time order, in batches; with ``concurrency`` 1 (the default)
batches arrive in order too, which keeps each member's events in order on Kafka.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from recsys_datagen.importers.mapping import (
    EVENTS_PER_RATING,
    ImportProfile,
    build_catalog,
    iter_events,
)
from recsys_datagen.importers.source import SourceData
from recsys_datagen.progress import NO_PROGRESS, ProgressSink
from recsys_datagen.sender import BatchSender, SendStats
from recsys_datagen.store import CassandraTarget, LakeTarget, StoreReport, store_dimensions

__all__ = ["ImportReport", "run_import"]


@dataclass(slots=True)
class ImportReport:
    events_built: int = 0
    titles: int = 0
    members: int = 0
    unmapped_genres: Counter[str] = field(default_factory=Counter)
    store: StoreReport | None = None
    send: SendStats | None = None
    send_seconds: float = 0.0


async def run_import(
    data: SourceData,
    *,
    profile: ImportProfile,
    sender: BatchSender | None,
    cassandra: CassandraTarget | None,
    lake: LakeTarget | None,
    batch_size: int = 500,
    progress: ProgressSink = NO_PROGRESS,
) -> ImportReport:
    """Store the catalog (where targets are given) and send the events (if a sender is given;
    without one the events are still built and counted: a dry run)."""
    report = ImportReport()
    catalog = build_catalog(data, profile)
    report.titles, report.members = catalog.titles.num_rows, catalog.members.num_rows
    report.unmapped_genres = catalog.unmapped_genres
    if cassandra is not None or lake is not None:
        report.store = store_dimensions(
            catalog.titles,
            catalog.members,
            source=data.source,
            cassandra=cassandra,
            lake=lake,
            details={"format": data.format, "path": str(data.path), "ratings": data.ratings},
            progress=progress,
        )
    advance = progress.task(
        "sending events" if sender else "building events", data.ratings * EVENTS_PER_RATING
    )
    t0 = time.perf_counter()
    batch: list[dict[str, object]] = []
    for event in iter_events(data, profile):
        report.events_built += 1
        batch.append(event)
        if len(batch) == batch_size:
            await _flush(sender, batch)
            advance(len(batch))
            batch = []
    if batch:
        await _flush(sender, batch)
        advance(len(batch))
    if sender is not None:
        await sender.drain()
        report.send = sender.stats
    report.send_seconds = time.perf_counter() - t0
    return report


async def _flush(sender: BatchSender | None, batch: list[dict[str, object]]) -> None:
    if sender is not None:
        await sender.submit(batch)
