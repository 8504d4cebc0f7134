"""Posting event batches to the ingest API with bounded concurrency, and counting the outcome.

    sender = BatchSender(client, concurrency=4)
    await sender.submit(events)  # waits only while `concurrency` batches are in flight
    await sender.drain()
    sender.stats.accepted, sender.stats.reasons, sender.stats.latency_percentiles()

The simulator and the importers share it, so both report the same figures: events sent,
accepted, rejected (with a summary of the reasons the ingest gave), failed (no answer within the
client's retry budget) and per-batch latency percentiles.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from recsys.clients.ingest import BatchOutcome, IngestClient, IngestUnavailable

__all__ = ["BatchSender", "SendStats", "latency_percentiles", "rejection_reasons"]

PERCENTILES = (50, 90, 99)
_REASON_CHARS = 120
_EVENT_PREFIX = re.compile(r"^(body\.)?events[.\[]\d*\]?\.?")
_INDEX = re.compile(r"\[\d+\]")


@dataclass(slots=True)
class SendStats:
    batches: int = 0
    events: int = 0  # events in batches the ingest answered
    accepted: int = 0
    rejected: int = 0
    failed: int = 0  # events in batches that got no answer (unavailable past the retry budget)
    retried_batches: int = 0  # answered after more than one attempt (503 or connection error)
    statuses: Counter[int] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)

    def latency_percentiles(self) -> dict[int, float]:
        return latency_percentiles(self.latencies_s)

    def record(self, outcome: BatchOutcome, size: int) -> None:
        self.batches += 1
        self.events += size
        self.accepted += outcome.accepted
        self.rejected += outcome.rejected
        self.statuses[outcome.status] += 1
        self.latencies_s.append(outcome.latency_s)
        if outcome.attempts > 1:
            self.retried_batches += 1
        if outcome.rejected:
            self.reasons.update(rejection_reasons(outcome.body, outcome.status, outcome.rejected))


def latency_percentiles(
    latencies_s: Sequence[float], percentiles: Sequence[int] = PERCENTILES
) -> dict[int, float]:
    """Nearest-rank percentiles (a value that was observed), in seconds; empty input gives {}."""
    if not latencies_s:
        return {}
    values = np.percentile(np.asarray(latencies_s), list(percentiles), method="inverted_cdf")
    return {p: float(v) for p, v in zip(percentiles, values, strict=True)}


def rejection_reasons(body: Mapping[str, Any], status: int, rejected: int) -> Counter[str]:
    """Why events were rejected, counted by a short reason, from the ingest's answer.

    Reads the per-event ``results`` the ingest returns (the entries that were not accepted and
    their error text); without them the whole batch counts under the status and ``detail``.
    """
    reasons: Counter[str] = Counter()
    results = body.get("results")
    if isinstance(results, list):
        for result in results:
            if isinstance(result, Mapping) and not _accepted(result):
                reasons[_reason_text(result)] += 1
    missing = rejected - sum(reasons.values())
    if missing > 0:
        detail = body.get("detail") or body.get("error") or ""
        reasons[_shorten(f"HTTP {status}" + (f": {_flatten(detail)}" if detail else ""))] += missing
    return reasons


def _accepted(result: Mapping[str, Any]) -> bool:
    if result.get("accepted") is True:
        return True
    status = str(result.get("status", "")).lower()
    return status in {"accepted", "ok", "duplicate"}


def _reason_text(result: Mapping[str, Any]) -> str:
    for key in ("reason", "error", "errors", "detail", "message"):
        if result.get(key):
            return _shorten(_flatten(result[key]))
    return _shorten(str(result.get("status") or "rejected"))


def _flatten(value: Any) -> str:
    """Error payloads come as text, lists of pydantic-style errors or dicts: one line of text."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        loc = value.get("loc") or value.get("field")
        msg = value.get("msg") or value.get("message") or value.get("detail")
        if msg:
            where = (
                ".".join(str(p) for p in loc) if isinstance(loc, list | tuple) else str(loc or "")
            )
            where = _location(where)
            return f"{where}: {msg}" if where else str(msg)
        return ", ".join(f"{k}={_flatten(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "; ".join(_flatten(v) for v in value[:3])
    return str(value)


def _location(loc: str) -> str:
    """``events[3].title_ids[2]`` -> ``title_ids[]``: the same problem at another position in
    the batch is the same reason."""
    return _INDEX.sub("[]", _EVENT_PREFIX.sub("", loc))


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


class BatchSender:
    def __init__(self, client: IngestClient, *, concurrency: int = 4) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._client = client
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = SendStats()

    @property
    def in_flight(self) -> int:
        """Batches sent and not yet answered (finished tasks leave the set a moment later)."""
        return sum(1 for task in self._tasks if not task.done())

    async def submit(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Start sending one batch; waits first while ``concurrency`` batches are in flight."""
        if not events:
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._send(list(events)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for every batch submitted so far."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def _send(self, events: list[Mapping[str, Any]]) -> None:
        try:
            outcome = await self._client.send(events)
        except IngestUnavailable as exc:
            self._fail(events, f"ingest unavailable: {exc}")
        except httpx.HTTPError as exc:
            self._fail(events, f"{type(exc).__name__}: {exc}")
        else:
            self.stats.record(outcome, len(events))
        finally:
            self._slots.release()

    def _fail(self, events: list[Mapping[str, Any]], reason: str) -> None:
        self.stats.batches += 1
        self.stats.failed += len(events)
        self.stats.reasons[_shorten(reason)] += len(events)
