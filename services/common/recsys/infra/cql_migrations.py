"""Versioned CQL migrations: ``NNNN_name.cql`` files applied in order, each recorded once.

The keyspace is created from settings (replication per data centre); each file runs inside it.
A migration that was applied and then edited is refused: write a new one instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from recsys.clients.cassandra import CassandraClient
from recsys.config import CassandraSettings
from recsys.infra.server import InfraError

__all__ = [
    "MIGRATIONS_DIR",
    "Migration",
    "MigrationResult",
    "apply_migrations",
    "drop_keyspace",
    "load_migrations",
]

# Schema changes wait for every node to agree on the new schema; on a loaded single node that
# has taken longer than the driver's 10 s default.
SCHEMA_TIMEOUT_S = 60.0

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.cql$")
_HISTORY = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version int PRIMARY KEY,
    name text,
    checksum text,
    applied_at timestamp
)"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    checksum: str


@dataclass(frozen=True, slots=True)
class MigrationResult:
    version: int
    name: str
    action: str  # "applied" or "already applied"


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.cql")):
        match = _FILE.match(path.name)
        if not match:
            raise InfraError(f"migration file {path.name} must be named NNNN_snake_case.cql")
        text = path.read_text()
        try:
            statements = _split(text)
        except InfraError as exc:
            raise InfraError(f"migration {path.name}: {exc}") from None
        if not statements:
            raise InfraError(f"migration {path.name} has no statements")
        migrations.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                statements=tuple(statements),
                checksum=hashlib.sha256(text.encode()).hexdigest(),
            )
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise InfraError(f"two migrations share a version number: {versions}")
    return migrations


def _split(text: str) -> list[str]:
    """Statements of a CQL script: split on ``;`` outside quotes, ``--`` comments dropped."""
    statements: list[str] = []
    current: list[str] = []
    i, in_string = 0, False
    while i < len(text):
        ch = text[i]
        if in_string:
            current.append(ch)
            if ch == "'":
                if text.startswith("''", i):  # an escaped quote inside the literal
                    current.append("'")
                    i += 1
                else:
                    in_string = False
        elif ch == "'":
            in_string = True
            current.append(ch)
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif ch == ";":
            statements.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    if in_string:
        raise InfraError("unterminated string literal in migration")
    statements.append("".join(current).strip())
    return [s for s in statements if s]


def ensure_keyspace(client: CassandraClient, settings: CassandraSettings, keyspace: str) -> None:
    client.session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {{"
        f"'class': 'NetworkTopologyStrategy', "
        f"'{settings.local_dc}': {settings.replication_factor}}}"
    )


def drop_keyspace(client: CassandraClient, keyspace: str) -> None:
    client.session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=SCHEMA_TIMEOUT_S)


def apply_migrations(
    client: CassandraClient,
    settings: CassandraSettings,
    *,
    keyspace: str | None = None,
    directory: Path = MIGRATIONS_DIR,
) -> list[MigrationResult]:
    """Create the keyspace if needed, then apply every migration not yet recorded, in order."""
    keyspace = keyspace or settings.keyspace
    migrations = load_migrations(directory)
    ensure_keyspace(client, settings, keyspace)
    client.session.set_keyspace(keyspace)
    client.session.execute(_HISTORY)
    applied = {
        row["version"]: row
        for row in client.session.execute("SELECT version, name, checksum FROM schema_migrations")
    }
    results: list[MigrationResult] = []
    for m in migrations:
        done = applied.get(m.version)
        if done is not None:
            if done["checksum"] != m.checksum:
                raise InfraError(
                    f"migration {m.version:04d}_{m.name} was edited after it was applied "
                    f"(checksum differs); add a new migration instead"
                )
            results.append(MigrationResult(m.version, m.name, "already applied"))
            continue
        for statement in m.statements:
            client.session.execute(statement)
        client.session.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
            " VALUES (%s, %s, %s, %s)",
            (m.version, m.name, m.checksum, datetime.now(UTC)),
        )
        results.append(MigrationResult(m.version, m.name, "applied"))
    return results
