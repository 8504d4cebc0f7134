"""Progress reporting that library code can call without knowing about terminals.

Library functions take a :class:`ProgressSink` and ask it for one task per phase; the command
line passes :func:`rich_progress` (bars on a terminal), tests pass :data:`NO_PROGRESS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["NO_PROGRESS", "Advance", "ProgressSink", "rich_progress"]

Advance = Callable[[int], None]


class ProgressSink(Protocol):
    def task(self, description: str, total: int | None) -> Advance:
        """Start a phase of ``total`` units (None when unknown); call the result per unit done."""
        ...


class _NoProgress:
    def task(self, description: str, total: int | None) -> Advance:
        return _ignore


def _ignore(_: int) -> None:
    return None


NO_PROGRESS: ProgressSink = _NoProgress()


class _RichSink:
    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def task(self, description: str, total: int | None) -> Advance:
        task_id = self._progress.add_task(description, total=total)

        def advance(units: int) -> None:
            self._progress.advance(task_id, units)

        return advance


@contextmanager
def rich_progress(console: Console | None = None) -> Iterator[ProgressSink]:
    """Bars on stderr for the duration of the block (plain lines when it is not a terminal)."""
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console or Console(stderr=True)) as progress:
        yield _RichSink(progress)
