"""``recsys services``: the platform's services as local processes."""

from __future__ import annotations

import typer

from recsys.cli.processes import add_lifecycle_commands
from recsys.infra import manager

app = typer.Typer(
    help="Run the platform's services locally (needs `recsys infra up` first).",
    no_args_is_help=True,
)
add_lifecycle_commands(app, manager.SERVICE_NAMES, "services")
