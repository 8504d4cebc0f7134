"""``recsys``: the platform's command line.

The shared library contributes ``infra``, ``services`` and ``models``; each service package adds
its own command groups through the ``recsys.cli`` entry-point group in pyproject.toml, so this
module never imports a service's internals.

Every invocation loads every group, so the modules that define commands import only typer at
module level and the rest (settings, clients, pyiceberg, numpy ...) inside the commands that use
them; `tests/unit/test_cli.py` checks it and `make bench-cli` times the light commands.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

from recsys.cli import infra, models, services

ENTRY_POINT_GROUP = "recsys.cli"


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="recsys",
        help="Real-time streaming recommendation platform.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        # Plain help and usage errors: Rich's formatting (rich, markdown-it, pygments) took
        # ~0.5 s of the ~0.8 s `recsys --help` cost once the heavy imports were gone. Applies to
        # every group and command below this one.
        rich_markup_mode=None,
    )
    app.add_typer(infra.app, name="infra")
    app.add_typer(services.app, name="services")
    app.add_typer(models.app, name="models")
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            plugin = ep.load()
        except Exception as exc:  # one broken service must not take `recsys infra` down with it
            typer.secho(f"warning: `recsys {ep.name}` unavailable: {exc!r}", fg="yellow", err=True)
            continue
        if isinstance(plugin, typer.Typer):
            app.add_typer(plugin, name=ep.name)
        else:  # a single command
            app.command(name=ep.name)(plugin)
    return app


def main() -> None:
    build_app()()
