"""Model inference off the event loop, in a small pool of its own.

onnxruntime and FAISS release the GIL while they compute, so a call's inference in this pool
leaves the event loop free to accept the next calls, read sockets and answer health checks. One
thread (the default) runs one inference at a time, with the session's own intra-op threads;
calls beyond it wait their turn in the pool's queue rather than in the kernel's.

    pool = InferencePool(settings.serving.inference_threads)
    scores = await pool.run(INFERENCE.labels(service="ranker", model="ranker"), model.predict, x)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from prometheus_client import Histogram

__all__ = ["InferencePool"]

P = ParamSpec("P")
R = TypeVar("R")


class InferencePool:
    def __init__(self, threads: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="inference")

    async def run(
        self, timer: Histogram, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """``fn(*args)`` in the pool; ``timer`` observes its own time (not the wait before)."""

        def timed() -> R:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timer.observe(time.perf_counter() - started)

        return await asyncio.get_running_loop().run_in_executor(self._executor, timed)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
