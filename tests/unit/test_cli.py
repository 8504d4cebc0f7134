from __future__ import annotations

import pytest
from typer.testing import CliRunner

from recsys.cli.main import build_app


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--help"], ["infra", "services"]),
        (["infra", "--help"], ["up", "down", "status", "topics", "migrate", "bootstrap"]),
        (["services", "--help"], ["up", "down", "status", "endpoints"]),
        (["services", "up", "--help"], ["ingest, features, bronze"]),
        (["infra", "status", "--help"], ["--json", "kafka, cassandra, redis"]),
    ],
)
def test_commands_are_registered(argv: list[str], expected: list[str]) -> None:
    result = CliRunner().invoke(build_app(), argv, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for word in expected:
        assert word in result.output


def test_unknown_server_is_a_clear_error() -> None:
    result = CliRunner().invoke(build_app(), ["infra", "status", "zookeeper"])
    assert result.exit_code == 1
    assert "unknown server" in result.output
