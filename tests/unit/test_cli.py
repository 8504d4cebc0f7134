from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsys.cli.main import build_app
from recsys_datagen import cli as datagen_cli
from recsys_datagen.world import DEFAULT_AS_OF


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--help"], ["infra", "services", "models"]),
        (["models", "--help"], ["list", "show", "promote", "rollback"]),
        (["models", "list", "--help"], ["--json"]),
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


# --- what `recsys` imports -------------------------------------------------------------------
# Every `recsys` call loads every command group; a heavy import at the top of one of them costs
# every command its time (the CLI took 5-8 s to answer `--help`). These run the real command in
# a fresh interpreter and list the top-level packages it imported; `make bench-cli` times them.

# Never needed to print help or to look at the local processes.
HEAVY = {
    "aiokafka",
    "cassandra",
    "faiss",
    "fastapi",
    "faust",
    "grpc",
    "httpx",
    "numpy",
    "onnxruntime",
    "pandas",
    "pyarrow",
    "pyiceberg",
    "redis",
    "rich",  # typer's Rich help formatting alone took ~0.5 s
    "sqlalchemy",
    "torch",
    "uvicorn",
}

_PROBE = """
import json, sys
from recsys.cli.main import main
out, sys.argv = sys.argv[1], ["recsys", *sys.argv[2:]]
try:
    main()
except SystemExit:
    pass
with open(out, "w") as f:
    json.dump(sorted({name.split(".")[0] for name in sys.modules}), f)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _imported_by(tmp_path: Path, *argv: str) -> set[str]:
    """Top-level packages in sys.modules after `recsys <argv>` ran to its end."""
    out = tmp_path / "modules.json"
    refused = str(_free_port())  # nothing listens: the commands fail fast, and touch no data
    env = {
        **os.environ,
        "RECSYS_INFRA__STATE_DIR": str(tmp_path / "state"),
        "RECSYS_REDIS__PORT": refused,
        "RECSYS_CASSANDRA__PORT": refused,
    }
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.exists(), result.stdout + result.stderr
    modules: list[str] = json.loads(out.read_text())
    return set(modules)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["services", "--help"],
        ["world", "--help"],
        ["services", "status"],
        ["services", "status", "--json"],
        ["infra", "--help"],
        ["models", "--help"],
        ["models", "list"],
        ["models", "show", "two_tower"],
    ],
)
def test_help_and_status_import_nothing_heavy(tmp_path: Path, argv: list[str]) -> None:
    assert _imported_by(tmp_path, *argv) & HEAVY == set()


def test_help_loads_no_settings_either(tmp_path: Path) -> None:
    imported = _imported_by(tmp_path, "--help")
    assert {"pydantic", "pydantic_settings", "psutil"} & imported == set()
    assert {"typer", "recsys"} <= imported  # the probe did run the command line


def test_features_commands_import_only_the_store_they_read(tmp_path: Path) -> None:
    # `features show` reads Redis, then Cassandra for what Redis lacks (cassandra-driver loads
    # numpy); `features trending` reads Redis only.
    show = _imported_by(tmp_path, "features", "show", "u1")
    assert show & HEAVY == {"redis", "cassandra", "numpy"}
    trending = _imported_by(tmp_path, "features", "trending", "US")
    assert trending & HEAVY == {"redis"}


def test_the_world_default_date_is_the_generators() -> None:
    # The CLI spells the date out so that it need not import the generator (numpy, pyarrow).
    assert datagen_cli._AS_OF.date() == DEFAULT_AS_OF
