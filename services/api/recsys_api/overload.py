"""The API's own saturation signal: how late its event loop runs a timer.

    lag = LoopLag()
    task = asyncio.create_task(lag.run())
    lag.seconds                       # recent lateness (peaks decay over ~50 ms)

When the loop is late, everything queued behind it is late too: requests wait before their
handler even starts, which no deadline inside the handler can see. The API uses the lag to shed
load cheaply before that queue grows past the budget: above ``OVERLOAD_LAG_MS`` a request skips
the personalised stages and is served from the fallback lists (level 2, reason ``overloaded``,
one Redis read instead of four calls); above ``SHED_LAG_MS`` it is refused with 429 before
routing. A CPU-starved host shows up the same way, which is the point: the API cannot tell, and
must not care, why it is late.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

__all__ = ["LoopLag"]

TICK_S: Final = 0.005
DECAY: Final = 0.8  # per tick: a peak of 100 ms falls under 10 ms in about 50 ms


class LoopLag:
    def __init__(self) -> None:
        self.seconds = 0.0

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(TICK_S)
            late = time.perf_counter() - started - TICK_S
            self.seconds = max(late, self.seconds * DECAY)
