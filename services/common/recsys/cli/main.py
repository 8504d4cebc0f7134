"""``recsys``: the platform's command line."""

from __future__ import annotations

import typer

from recsys.cli import infra

app = typer.Typer(
    name="recsys",
    help="Real-time streaming recommendation platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(infra.app, name="infra")


def main() -> None:
    app()
