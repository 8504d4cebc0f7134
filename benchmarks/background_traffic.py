"""Background traffic for the benchmarks that measure the running system: `recsys simulate`
posting member events to the ingest API while they run.

    with simulator(rate=100, duration_s=120):
        ...                                   # measured meanwhile
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def simulator(*, rate: float, duration_s: float) -> Iterator[None]:
    """Run the simulator at ``rate`` events/s (0: none) for at most ``duration_s``."""
    if rate <= 0:
        yield
        return
    print(f"simulator: {rate:g} events/s to the ingest API")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "recsys"),
            "simulate",
            *("--rate", str(rate), "--duration", str(duration_s)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(10)
