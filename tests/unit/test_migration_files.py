from __future__ import annotations

from pathlib import Path

import pytest

from recsys.infra.cql_migrations import load_migrations
from recsys.infra.server import InfraError


def test_shipped_migrations_are_ordered_and_parse() -> None:
    migrations = load_migrations()
    versions = [m.version for m in migrations]
    assert versions == sorted(versions)
    assert versions[0] == 1
    assert all(m.statements for m in migrations)


def test_statements_split_without_comments(tmp_path: Path) -> None:
    (tmp_path / "0001_two.cql").write_text(
        "-- a comment; with a semicolon\nCREATE TABLE a (k int PRIMARY KEY); -- trailing\n"
        "CREATE TABLE b (k int PRIMARY KEY);\n"
    )
    (m,) = load_migrations(tmp_path)
    assert m.statements == (
        "CREATE TABLE a (k int PRIMARY KEY)",
        "CREATE TABLE b (k int PRIMARY KEY)",
    )


def test_semicolons_and_dashes_inside_literals_are_kept(tmp_path: Path) -> None:
    (tmp_path / "0001_literals.cql").write_text(
        "CREATE TABLE a (k int PRIMARY KEY) WITH comment = 'one; two -- three';\n"
        "INSERT INTO a (k, v) VALUES (1, 'it''s;fine'); -- done\n"
    )
    (m,) = load_migrations(tmp_path)
    assert m.statements == (
        "CREATE TABLE a (k int PRIMARY KEY) WITH comment = 'one; two -- three'",
        "INSERT INTO a (k, v) VALUES (1, 'it''s;fine')",
    )


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"1_short.cql": "SELECT 1;"}, "NNNN_snake_case"),
        ({"0001_empty.cql": "-- nothing\n"}, "no statements"),
        ({"0001_a.cql": "SELECT 1;", "0001_b.cql": "SELECT 1;"}, "share a version"),
        ({"0001_open.cql": "SELECT 'x;"}, "0001_open.cql: unterminated string"),
    ],
)
def test_bad_migration_files_are_refused(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(InfraError, match=message):
        load_migrations(tmp_path)
