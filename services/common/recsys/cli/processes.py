"""Start/stop/status output shared by `recsys infra` and `recsys services`.

No `from __future__ import annotations` here: typer reads the commands' annotations at run time,
and they refer to aliases local to `add_lifecycle_commands`. The settings and the infra manager
are imported inside the commands (and named in quotes below) so that `recsys --help` loads
neither pydantic nor the servers' code.
"""

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from recsys.infra.server import InfraError

if TYPE_CHECKING:
    from recsys.config import Settings
    from recsys.infra.manager import ServerStatus

__all__ = ["add_lifecycle_commands", "fail", "show_status", "start", "status_line", "stop"]


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def start(settings: "Settings", names: Sequence[str]) -> None:
    from recsys.infra import manager

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


def stop(settings: "Settings", names: Sequence[str]) -> None:
    from recsys.infra import manager

    try:
        outcome = manager.down(settings, names, progress=lambda _: None)
    except InfraError as exc:
        raise fail(str(exc)) from None
    for name, result in outcome.items():
        typer.echo(f"  {name:<10} {result}")


def show_status(settings: "Settings", names: Sequence[str], *, as_json: bool) -> None:
    """Print the table (or JSON); exit 1 if any process is not running and answering."""
    from recsys.infra import manager

    try:
        rows = asyncio.run(manager.status(settings, names))
    except InfraError as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        for r in rows:
            typer.echo(status_line(r))
    if any(r.state != "running" for r in rows):
        raise typer.Exit(code=1)


def status_line(r: "ServerStatus") -> str:
    """One row of `status`, ending with the restarts and the last exit of a supervised service.

    e.g. ``features-1 running  127.0.0.1:9101  pid 812  up 40s  logs ...  restarted 2 times
    (last: exit 1 at 10:42:03: RuntimeError: boom)``
    """
    pid = f"pid {r.pid}" if r.pid else ""
    uptime = f"up {r.uptime_s:.0f}s" if r.uptime_s is not None else ""
    line = f"  {r.name:<12} {r.state:<14} {r.address:<16} {pid:<10} {uptime:<10} logs {r.log}"
    history = [f"serving {r.detail}"] if r.detail else []
    if r.restart_in_s is not None:
        history.append(f"next start in {r.restart_in_s:.0f}s")
    if r.restarts:
        history.append(f"restarted {r.restarts} time{'' if r.restarts == 1 else 's'}")
    if r.last_exit is not None:
        history.append(f"(last: {r.last_exit.describe()})")
    return " ".join([line, *history]) if history else line


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
        from recsys.config import Settings

        start(Settings(), names or defaults)

    @app.command()
    def down(names: names_arg = None) -> None:
        """Stop what `up` started (by pid); nothing else is touched."""
        from recsys.config import Settings

        stop(Settings(), names or defaults)

    @app.command()
    def status(names: names_arg = None, as_json: as_json_opt = False) -> None:
        """What runs where: state, pid, uptime, log directory. Exits 1 if any is not running."""
        from recsys.config import Settings

        show_status(Settings(), names or defaults, as_json=as_json)
