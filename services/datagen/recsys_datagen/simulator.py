"""The simulator's I/O loop: pace the traffic model to a rate and post batches like an SDK.

Every ``tick`` (100 ms by default, as client SDKs flush) the loop computes how many events the
target rate owes since the start, takes exactly that many from the :class:`TrafficModel` and
submits them in batches to a :class:`BatchSender`. Because the count is derived from the elapsed
time rather than accumulated per tick, a late tick catches up and the total after ``duration``
is exactly ``int(rate x duration)``; the achieved rate is reported, not assumed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from recsys_datagen.sender import BatchSender, SendStats
from recsys_datagen.traffic import TrafficModel

__all__ = ["SimulationConfig", "SimulationReport", "Snapshot", "run_simulation"]


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    rate: float  # events per second
    duration_s: float
    tick_s: float = 0.1
    batch_size: int = 500
    report_every_s: float = 5.0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.duration_s <= 0 or self.tick_s <= 0 or self.batch_size < 1:
            raise ValueError("rate, duration, tick and batch size must be positive")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Progress so far, for periodic reports."""

    elapsed_s: float
    handed_out: int
    stats: SendStats
    in_flight: int


@dataclass(slots=True)
class SimulationReport:
    config: SimulationConfig
    handed_out: int = 0  # events the pacer took from the model (all kinds)
    pacing_s: float = 0.0  # from the first tick to the last batch submitted
    elapsed_s: float = 0.0  # until every answer was in
    stats: SendStats = field(default_factory=SendStats)
    kinds: Counter[str] = field(default_factory=Counter)  # normal, late, duplicate, malformed
    defects: Counter[str] = field(default_factory=Counter)
    sessions: int = 0
    warm_sessions: int = 0

    @property
    def rate(self) -> float:
        """Events handed to the sender per second of the run."""
        return self.handed_out / self.pacing_s if self.pacing_s > 0 else 0.0

    @property
    def rate_error(self) -> float:
        """Relative deviation of the achieved rate from the target (0.01 is 1 %)."""
        return self.rate / self.config.rate - 1.0


async def run_simulation(
    model: TrafficModel,
    sender: BatchSender,
    config: SimulationConfig,
    *,
    clock: Callable[[], float] = time.monotonic,
    wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    on_progress: Callable[[Snapshot], None] | None = None,
) -> SimulationReport:
    report = SimulationReport(config=config)
    start = clock()
    next_report = config.report_every_s
    while True:
        elapsed = min(clock() - start, config.duration_s)
        owed = int(config.rate * elapsed) - report.handed_out
        if owed > 0:
            # Planning sessions is CPU work: a worker thread keeps the event loop free to read
            # responses, so the latencies measured are the server's, not our own busy time.
            events = await asyncio.to_thread(model.take, wall_ms(), owed)
            report.handed_out += len(events)
            for i in range(0, len(events), config.batch_size):
                await sender.submit(events[i : i + config.batch_size])
        if on_progress is not None and elapsed >= next_report:
            next_report += config.report_every_s
            on_progress(Snapshot(elapsed, report.handed_out, sender.stats, sender.in_flight))
        if elapsed >= config.duration_s:
            break
        next_tick = start + (math.floor(elapsed / config.tick_s) + 1) * config.tick_s
        await asyncio.sleep(max(0.0, next_tick - clock()))
    report.pacing_s = clock() - start
    await sender.drain()
    report.elapsed_s = clock() - start
    report.stats = sender.stats
    report.kinds = Counter(model.counts)
    report.sessions = report.kinds.pop("sessions", 0)
    report.defects = Counter(model.defects)
    return report
