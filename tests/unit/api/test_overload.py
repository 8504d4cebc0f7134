"""The event-loop lag the API sheds load by: a blocked loop shows, and the signal decays."""

from __future__ import annotations

import asyncio
import time

from recsys_api.overload import LoopLag


async def test_a_blocked_loop_shows_as_lag_that_then_decays() -> None:
    lag = LoopLag()
    task = asyncio.create_task(lag.run())
    try:
        await asyncio.sleep(0.02)
        time.sleep(0.1)  # noqa: ASYNC251 (on purpose: the loop cannot run the timer for 100 ms)
        await asyncio.sleep(0.01)
        assert lag.seconds >= 0.05
        peak = lag.seconds
        await asyncio.sleep(0.3)
        assert lag.seconds < peak / 4
    finally:
        task.cancel()
