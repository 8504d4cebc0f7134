"""check_batch_async: the same outcome as check_batch, with the event loop free between chunks.

How long the loop waits is a figure of ``make bench-ingest`` (validation part), not asserted here;
these tests pin that other tasks do run while a max-size batch is checked, and that chunking
changes no outcome.
"""

from __future__ import annotations

import asyncio
from typing import Any

from recsys_ingest.batch import VALIDATION_CHUNK, CheckedBatch, check_batch, check_batch_async
from tests.ingest_support import TYPE_FIELDS, event

MAX_EVENT_BYTES = 8192


def _mixed(n: int) -> list[Any]:
    """Valid events of every type, with a rejected one every seventh (chunk edges included)."""
    kinds = list(TYPE_FIELDS)
    out: list[Any] = []
    for i in range(n):
        if i % 7 == 3:
            out.append(event("rate", user_id=f"u{i}", rating=9))
        else:
            out.append(event(kinds[i % len(kinds)], user_id=f"u{i}"))
    return out


def _outcome(checked: CheckedBatch) -> tuple[Any, ...]:
    # received_at (inside each record) is the clock: compare keys and results, not values.
    return (
        [key for key, _ in checked.records],
        checked.results,
        checked.accepted_types,
        checked.rejected_reasons,
    )


async def test_other_tasks_run_between_the_chunks_of_a_500_event_batch() -> None:
    events = _mixed(500)
    turns = 0

    async def other_task() -> None:  # stands for another request or a /healthz probe
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_task())
    await asyncio.sleep(0)
    before = turns
    checked = await check_batch_async(events, max_event_bytes=MAX_EVENT_BYTES)
    during = turns - before
    other.cancel()

    assert checked.accepted + checked.rejected == 500
    # A turn for the other task at least every 50 events (under a millisecond of checking on the
    # development machine); checked in one go, it would get none.
    assert during >= 500 // 50 - 1


async def test_chunked_checking_gives_the_same_outcome_as_checking_in_one_go() -> None:
    events = _mixed(3 * VALIDATION_CHUNK + 5)
    whole = check_batch(events, max_event_bytes=MAX_EVENT_BYTES)
    for chunk in (1, 7, VALIDATION_CHUNK, 10_000):
        chunked = await check_batch_async(events, max_event_bytes=MAX_EVENT_BYTES, chunk=chunk)
        assert _outcome(chunked) == _outcome(whole)
    assert whole.rejected == len([i for i in range(len(events)) if i % 7 == 3])
    assert [r["index"] for r in whole.results] == list(range(len(events)))
