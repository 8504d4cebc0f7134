"""``recsys experiments``: check a configuration and see where a member lands.

recsys experiments validate FILE             # every problem with its line; exit 1 if any
recsys experiments assign USER [--country US] [--device tv] [--config FILE] [--json]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["experiments_app"]

experiments_app = typer.Typer(
    help="Experiment configuration and assignment (docs/experiments.md).", no_args_is_help=True
)


@experiments_app.callback()
def _group() -> None:
    """Experiment configuration and assignment (docs/experiments.md)."""


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@experiments_app.command()
def validate(path: Annotated[Path, typer.Argument(help="The YAML configuration.")]) -> None:
    """Check a configuration: every problem is printed as FILE:LINE: where: what."""
    from recsys_experiments.config import ConfigError, iter_experiments, load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.secho(problem, fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
    experiments = sum(1 for _ in iter_experiments(config))
    typer.echo(
        f"{path}: valid, version {config.version}: {len(config.layers)} layer(s), "
        f"{experiments} experiment(s), holdout {config.holdout.percent:g}%"
    )


@experiments_app.command()
def assign(
    user_id: Annotated[str, typer.Argument(help="The member.")],
    country: Annotated[str, typer.Option(help="ISO 3166-1 alpha-2.")] = "US",
    device: Annotated[str, typer.Option(help="tv, mobile, web, tablet, ...")] = "tv",
    config: Annotated[
        Path | None, typer.Option(help="Default: RECSYS_EXPERIMENTS__CONFIG.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """The member's holdout status, variants and serving parameters."""
    import orjson

    from recsys.catalog import ID_PATTERN
    from recsys.config import Settings
    from recsys_experiments.assignment import assign as assign_member
    from recsys_experiments.config import ConfigError, load_config

    if not ID_PATTERN.match(user_id):
        raise _fail(f"user id {user_id!r} is malformed (1-64 letters, digits, '_', '-', '.', ':')")
    path = config or Settings().experiments.config
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        raise _fail("\n".join(exc.problems)) from None
    result = assign_member(loaded, user_id, country=country, device=device)
    serving = result.serving.model_dump()
    if as_json:
        typer.echo(
            orjson.dumps(
                {
                    "user_id": user_id,
                    "config_version": result.config_version,
                    "holdout": result.holdout,
                    "assignments": [
                        {
                            "experiment_id": a.experiment_id,
                            "layer": a.layer,
                            "variant": a.variant,
                            "bucket": a.bucket,
                        }
                        for a in result.assignments
                    ],
                    "serving": serving,
                }
            ).decode()
        )
        return
    typer.echo(f"{user_id} ({country}, {device}), config {result.config_version}")
    if result.holdout:
        typer.echo("  holdout: defaults only")
    elif not result.assignments:
        typer.echo("  in no experiment: defaults")
    for a in result.assignments:
        typer.echo(f"  {a.layer}: {a.experiment_id} -> {a.variant} (bucket {a.bucket})")
    typer.echo(f"  serving: {orjson.dumps(serving).decode()}")
