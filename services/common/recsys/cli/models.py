"""``recsys models``: look at the model registry, promote a version, roll back.

The registry (pydantic) and the settings are imported inside the commands, so `recsys --help`
stays light (tests/unit/test_cli.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recsys.cli.processes import fail

if TYPE_CHECKING:
    from recsys.models import ModelRegistry, ModelVersion

app = typer.Typer(
    help="The model registry (RECSYS_MODELS__ROOT): versions, the current pointer, rollback.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _registry() -> ModelRegistry:
    from recsys.config import Settings
    from recsys.models import ModelRegistry

    settings = Settings()
    return ModelRegistry.from_settings(settings.models)


@app.command("list")
def list_models(
    name: Annotated[str | None, typer.Argument(help="One model: list its versions.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The registered models and their current versions, or the versions of one model."""
    from recsys.models import RegistryError

    registry = _registry()
    try:
        rows = _version_rows(registry, name) if name else _model_rows(registry)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    elif not rows:
        typer.echo(f"no models in {registry.root}")
    elif name:
        for row in rows:
            mark = "*" if row["current"] else " "
            detail = row.get("error") or f"{row['created_at']}  {_metrics_line(row['metrics'])}"
            typer.echo(f"{mark} {row['version']:<7} {detail}")
    else:
        typer.echo(f"{'model':<16} {'current':<8} {'latest':<8} {'versions':>8}  created (current)")
        for row in rows:
            typer.echo(
                f"{row['name']:<16} {row['current'] or '-':<8} {row['latest'] or '-':<8} "
                f"{row['versions']:>8}  {row['created_at'] or '-'}"
            )


def _model_rows(registry: ModelRegistry) -> list[dict[str, Any]]:
    rows = []
    for name in registry.names():
        current = registry.current(name, verify=False)
        ids = registry.version_ids(name)
        rows.append(
            {
                "name": name,
                "current": current.version if current else None,
                "latest": ids[-1] if ids else None,
                "versions": len(ids),
                "created_at": _created(current) if current else None,
            }
        )
    return rows


def _version_rows(registry: ModelRegistry, name: str) -> list[dict[str, Any]]:
    from recsys.models import RegistryError

    current = registry.current_token(name)
    rows: list[dict[str, Any]] = []
    for version in registry.version_ids(name):
        row: dict[str, Any] = {"version": version, "current": version == current}
        try:
            found = registry.get(name, version, verify=False)
        except RegistryError as exc:  # one broken version must not hide the others
            row["error"] = str(exc)
        else:
            row |= {"created_at": _created(found), "metrics": found.manifest.metrics}
        rows.append(row)
    return rows


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="Model name, e.g. two_tower.")],
    version: Annotated[str | None, typer.Argument(help="Version id; default: current.")] = None,
    as_json: JsonOption = False,
) -> None:
    """One version's manifest (its files checked against their sha256)."""
    from recsys.models import RegistryError

    registry = _registry()
    try:
        found = registry.get(name, version) if version else registry.current(name)
        if found is None:
            raise RegistryError(f"{name} has no current version; promote one first")
        is_current = registry.current_token(name) == found.version
    except RegistryError as exc:
        raise fail(str(exc)) from None
    manifest = found.manifest.model_dump(mode="json")
    if as_json:
        body = {"path": str(found.path), "current": is_current, "manifest": manifest}
        typer.echo(json.dumps(body, indent=2))
        return
    typer.echo(f"{name} {found.version}{'  (current)' if is_current else ''}")
    typer.echo(f"  path          {found.path}")
    typer.echo(f"  created_at    {_created(found)}")
    typer.echo(f"  code_version  {manifest['code_version']}")
    for field in ("training_data", "features", "feature_versions", "params", "metrics"):
        if manifest[field]:
            typer.echo(f"  {field:<13} {json.dumps(manifest[field])}")
    for rel, f in manifest["files"].items():
        typer.echo(f"  file          {rel}  {f['size']} bytes  sha256 {f['sha256'][:12]}")


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version id to make current, e.g. v0003.")],
) -> None:
    """Make a version current (its files are verified first); services pick it up."""
    from recsys.models import RegistryError

    registry = _registry()
    try:
        before = registry.current_token(name)
        found = registry.promote(name, version)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    if before == found.version:
        typer.echo(f"{name}: {found.version} is already current")
    else:
        typer.echo(f"{name}: current {before or '-'} -> {found.version}")


@app.command()
def rollback(name: Annotated[str, typer.Argument(help="Model name.")]) -> None:
    """Make the previous current version current again."""
    from recsys.models import RegistryError

    registry = _registry()
    try:
        before = registry.current_token(name)
        found = registry.rollback(name)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"{name}: current {before} -> {found.version} (rolled back)")


def _created(found: ModelVersion) -> str:
    return found.manifest.created().isoformat(timespec="seconds")


def _metrics_line(metrics: dict[str, Any]) -> str:
    flat = [f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, int | float)]
    return "  ".join(flat[:6])
