"""The platform's own services as local processes, managed like the servers they depend on.

Each service runs its console script from the virtualenv (``recsys-ingest`` ...) and counts as
ready when its readiness endpoint answers 200.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from recsys.infra.server import InfraError, Server

__all__ = ["IngestService"]


def _script(name: str) -> str:
    # Console scripts live beside the interpreter of the virtualenv running us.
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise InfraError(f"{path} is missing; run `make venv` to install the services")
    return str(path)


class IngestService(Server):
    name = "ingest"

    @property
    def address(self) -> str:
        return f"{self.settings.ingest.host}:{self.settings.ingest.port}"

    @property
    def ports(self) -> list[int]:
        return [self.settings.ingest.port]

    def prepare(self) -> str:
        self.ensure_dirs()
        return ""

    def argv(self) -> list[str]:
        return [_script("recsys-ingest")]

    async def probe(self) -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            response = await client.get(f"{self.settings.ingest.url}/readyz")
        if response.status_code != 200:
            raise InfraError(f"ingest not ready: {response.status_code} {response.text[:200]}")
