"""``recsys services``: the platform's services as local processes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from recsys.cli.processes import add_lifecycle_commands, fail
from recsys.infra.names import SERVICE_NAMES
from recsys.infra.server import InfraError

if TYPE_CHECKING:
    from recsys.config import Settings

app = typer.Typer(
    help="Run the platform's services locally (needs `recsys infra up` first). `features` "
    "stands for the feature workers features-1 ... features-N (RECSYS_SERVICES__FEATURES_WORKERS).",
    no_args_is_help=True,
)
add_lifecycle_commands(app, SERVICE_NAMES, "services")

LOCAL_API_KEY = "local-dev-key"


@app.command()
def endpoints() -> None:
    """Where to look: the recommendation API, the ingest API and each worker's /metrics."""
    from recsys.config import Settings
    from recsys.infra import manager

    settings = Settings()
    try:
        found = manager.service_endpoints(settings)
    except InfraError as exc:
        raise fail(str(exc)) from None
    for line in endpoint_lines(settings, found):
        typer.echo(line)


def endpoint_lines(settings: Settings, found: list[tuple[str, str]]) -> list[str]:
    key = (
        LOCAL_API_KEY
        if LOCAL_API_KEY in settings.ingest.api_key_set
        else "one of RECSYS_INGEST__API_KEYS"
    )
    lines = []
    for name, url in found:
        if name == "api":
            lines.append(f"Recommendations: {url}  (web page; the API: {url}docs)")
        elif name == "ingest":
            lines.append(f"Ingest API:  {url}  (X-API-Key: {key}; curl example in README.md)")
        elif url.startswith("grpc://"):
            lines.append(f"gRPC:        {url.removeprefix('grpc://')}  ({name}; docs/serving.md)")
        else:
            lines.append(f"Metrics:     {url}  ({name})")
    return lines
