"""``recsys services``: the platform's services as local processes."""

from __future__ import annotations

from typing import Annotated

import typer

from recsys.cli.processes import show_status, start, stop
from recsys.config import Settings
from recsys.infra import manager

app = typer.Typer(
    help="Run the platform's services locally (needs `recsys infra up` first).",
    no_args_is_help=True,
)

Names = Annotated[
    list[str] | None,
    typer.Argument(help=f"Services to act on (default: {', '.join(manager.SERVICE_NAMES)})."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.command()
def up(names: Names = None) -> None:
    """Start the services that are not running and wait until each is ready."""
    start(Settings(), names or manager.SERVICE_NAMES)


@app.command()
def down(names: Names = None) -> None:
    """Stop the services `up` started (by pid)."""
    stop(Settings(), names or manager.SERVICE_NAMES)


@app.command()
def status(names: Names = None, as_json: AsJson = False) -> None:
    """Show each service's state, pid and log directory. Exits 1 if any is not running."""
    show_status(Settings(), names or manager.SERVICE_NAMES, as_json=as_json)
