"""The configuration file, watched: a change is validated, then swapped in; a bad one is refused
and the running configuration keeps serving, with the reason in the log and the metrics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from recsys.log import get_logger
from recsys_experiments.config import ConfigError, ExperimentsConfig, load_config
from recsys_experiments.metrics import CONFIG_RELOADS, CONFIG_VERSION

__all__ = ["LiveConfig"]

log = get_logger(__name__)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


class LiveConfig:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.current: ExperimentsConfig | None = None
        self._stamp: tuple[int, int] | None = None
        self.last_error = ""

    def get(self) -> ExperimentsConfig:
        if self.current is None:
            raise RuntimeError("no configuration loaded")
        return self.current

    def check(self) -> bool:
        """Load the file if it changed since the last check; True when a new one was swapped in.
        A file that does not validate is refused (logged, counted) and not tried again until it
        changes."""
        stamp = _stamp(self.path)
        if stamp is None or stamp == self._stamp:
            if stamp is None and self.current is None:
                self.last_error = f"{self.path}: no such file"
            return False
        self._stamp = stamp
        try:
            config = load_config(self.path)
        except ConfigError as exc:
            self.last_error = "; ".join(exc.problems)
            if self.current is not None:
                CONFIG_RELOADS.labels(result="error").inc()
                log.error(
                    "config refused; the running one keeps serving",
                    running=self.current.version,
                    problems=exc.problems[:20],
                )
            return False
        previous, self.current = self.current, config
        if previous is not None:
            CONFIG_VERSION.remove(previous.version)
            CONFIG_RELOADS.labels(result="ok").inc()
        CONFIG_VERSION.labels(version=config.version).set(1)
        log.info(
            "config loaded",
            version=config.version,
            previous=previous.version if previous else None,
            layers=len(config.layers),
        )
        return True

    async def load_initial(self, *, timeout_s: float, poll_s: float = 1.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.check() and self.current is None:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"no valid configuration after {timeout_s:g} s: {self.last_error}"
                )
            await asyncio.sleep(poll_s)

    async def watch(self, *, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.check()
