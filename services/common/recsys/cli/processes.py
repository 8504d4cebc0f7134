"""Start/stop/status output shared by `recsys infra` and `recsys services`.

No `from __future__ import annotations` here: typer reads the commands' annotations at run time,
and they refer to aliases local to `add_lifecycle_commands`.
"""

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Annotated

import typer

from recsys.config import Settings
from recsys.infra import manager
from recsys.infra.server import InfraError

__all__ = ["add_lifecycle_commands", "fail", "show_status", "start", "stop"]


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def start(settings: Settings, names: Sequence[str]) -> None:
    t0 = time.monotonic()
    try:
        results = asyncio.run(manager.up(settings, names, progress=typer.echo))
    except InfraError as exc:
        raise fail(str(exc)) from None
    for r in results:
        note = f" ({r.note})" if r.note else ""
        typer.echo(
            f"  {r.name:<10} {r.action:<16} {r.seconds:6.1f}s  {r.address:<16} pid {r.pid}{note}"
        )
    typer.echo(f"{', '.join(names)} up in {time.monotonic() - t0:.1f}s")


def stop(settings: Settings, names: Sequence[str]) -> None:
    try:
        outcome = manager.down(settings, names, progress=lambda _: None)
    except InfraError as exc:
        raise fail(str(exc)) from None
    for name, result in outcome.items():
        typer.echo(f"  {name:<10} {result}")


def show_status(settings: Settings, names: Sequence[str], *, as_json: bool) -> None:
    """Print the table (or JSON); exit 1 if any process is not running and answering."""
    try:
        rows = asyncio.run(manager.status(settings, names))
    except InfraError as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        for r in rows:
            pid = f"pid {r.pid}" if r.pid else ""
            uptime = f"up {r.uptime_s:.0f}s" if r.uptime_s is not None else ""
            typer.echo(
                f"  {r.name:<10} {r.state:<14} {r.address:<16} {pid:<10} {uptime:<10} logs {r.log}"
            )
    if any(r.state != "running" for r in rows):
        raise typer.Exit(code=1)


def add_lifecycle_commands(app: typer.Typer, defaults: Sequence[str], noun: str) -> None:
    """Register ``up``, ``down`` and ``status`` on ``app`` for the processes in ``defaults``."""
    names_arg = Annotated[
        list[str] | None,
        typer.Argument(help=f"{noun.capitalize()} to act on (default: {', '.join(defaults)})."),
    ]
    as_json_opt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

    @app.command()
    def up(names: names_arg = None) -> None:
        """Start what is not running and wait until each answers a real request."""
        start(Settings(), names or defaults)

    @app.command()
    def down(names: names_arg = None) -> None:
        """Stop what `up` started (by pid); nothing else is touched."""
        stop(Settings(), names or defaults)

    @app.command()
    def status(names: names_arg = None, as_json: as_json_opt = False) -> None:
        """What runs where: state, pid, uptime, log directory. Exits 1 if any is not running."""
        show_status(Settings(), names or defaults, as_json=as_json)
