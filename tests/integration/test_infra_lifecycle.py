"""`recsys infra` semantics: idempotent up, status, and down that stops only what it started.

Uses a private Redis on a free port and its own state directory, so the shared servers the other
tests use are not touched.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from recsys.config import InfraSettings, RedisSettings, Settings
from recsys.infra import manager
from recsys.infra.process import read_record
from recsys.infra.server import InfraError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def private(tmp_path: Path, infra: Settings) -> Settings:
    return infra.model_copy(
        update={
            "redis": RedisSettings(port=_free_port()),
            "infra": InfraSettings(state_dir=tmp_path / "state", cache_dir=infra.infra.cache_dir),
        }
    )


def test_up_is_idempotent_and_down_stops_by_pid(private: Settings) -> None:
    (first,) = asyncio.run(manager.up(private, ["redis"], progress=lambda _: None))
    assert first.action == "started"
    (second,) = asyncio.run(manager.up(private, ["redis"], progress=lambda _: None))
    assert second.action == "already running"
    assert second.pid == first.pid

    (row,) = asyncio.run(manager.status(private, ["redis"]))
    assert row.state == "running"
    assert row.pid == first.pid

    assert manager.down(private, ["redis"], progress=lambda _: None) == {"redis": "stopped"}
    assert not psutil.pid_exists(first.pid) or psutil.Process(first.pid).status() == "zombie"
    assert read_record(private.infra.state_dir / "redis" / "process.json") is None
    (row,) = asyncio.run(manager.status(private, ["redis"]))
    assert row.state == "stopped"
    assert manager.down(private, ["redis"], progress=lambda _: None) == {
        "redis": "not started by recsys"
    }


def test_a_port_held_by_someone_else_is_reported(private: Settings) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", private.redis.port))
        squatter.listen()
        with pytest.raises(
            InfraError,
            match=r"in use by a process this checkout's recsys did not start \(port \d+: pid \d+",
        ):
            asyncio.run(manager.up(private, ["redis"], progress=lambda _: None))


def test_a_changed_port_while_running_is_reported(private: Settings) -> None:
    asyncio.run(manager.up(private, ["redis"], progress=lambda _: None))
    try:
        moved = private.model_copy(update={"redis": RedisSettings(port=_free_port())})
        with pytest.raises(InfraError, match="already runs from this checkout"):
            asyncio.run(manager.up(moved, ["redis"], progress=lambda _: None))
    finally:
        manager.down(private, ["redis"], progress=lambda _: None)


def test_unknown_server_names_are_refused(private: Settings) -> None:
    with pytest.raises(InfraError, match="unknown server"):
        manager.servers(private, ["zookeeper"])


def test_cli_status_reports_the_shared_servers(infra: Settings) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "recsys", "infra", "status", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == {"kafka", "cassandra", "redis", "prometheus"}
    assert all(r["state"] == "running" and r["pid"] for r in rows.values())
