"""`recsys services up|status|down` with the real processes: ingest, two feature workers and the
bronze writer, as `make up` runs them, against the real Kafka, Cassandra and Redis.

Everything is private to the test: its own state directory, free ports, topics, consumer groups,
keyspace, Redis prefix and lake warehouse, all passed through the environment like a user would
(the CLI runs as a subprocess and the managed processes inherit its environment).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from redis.asyncio import Redis

from recsys.clients.cassandra import connect_cassandra
from recsys.config import Settings
from recsys.infra import manager
from recsys.infra.cql_migrations import apply_migrations, drop_keyspace
from recsys.infra.process import read_record
from recsys.infra.server import InfraError, port_is_free
from recsys.infra.services import metric_value
from recsys.infra.supervise import SupervisorState, read_state
from recsys.lake import load_catalog, table_identifier
from tests.features_support import create_topics, delete_topics, wait_for

SERVICES = ["ingest", "features-1", "features-2", "bronze"]
# The stream services (the serving ones need models: tests/integration/serving).
STREAM = ["ingest", "features", "bronze"]
API_KEY = "test-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _free_port_pair() -> int:
    """A port p with p + 1 free as well (two workers' metrics ports)."""
    for _ in range(50):
        port = _free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


@dataclass
class Platform:
    unique: str
    keyspace: str
    key_prefix: str
    topic: str

    @property
    def settings(self) -> Settings:
        return Settings()  # from the environment the test set, as the CLI reads it


@pytest.fixture
def platform(
    infra: Settings, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Platform]:
    p = Platform(
        unique=unique,
        keyspace=f"test_svc_{unique}",
        key_prefix=f"rec:v1:test:{unique}",
        topic=f"test.{unique}.events",
    )
    features_port = _free_port_pair()
    env = {
        "RECSYS_INFRA__STATE_DIR": str(tmp_path / "state"),
        "RECSYS_INFRA__STOP_TIMEOUT_S": "30",
        "RECSYS_INGEST__PORT": str(_free_port()),
        "RECSYS_INGEST__TOPIC": p.topic,
        "RECSYS_INGEST__API_KEYS": API_KEY,
        "RECSYS_SERVICES__FEATURES_WORKERS": "2",
        "RECSYS_SERVICES__FEATURES_METRICS_PORT": str(features_port),
        "RECSYS_SERVICES__BRONZE_METRICS_PORT": str(_free_port()),
        "RECSYS_FEATURES__APP_ID": f"test-svc-{unique}",
        "RECSYS_FEATURES__EVENTS_TOPIC": p.topic,
        "RECSYS_FEATURES__LATE_TOPIC": f"test.{unique}.late",
        "RECSYS_FEATURES__SESSIONS_TOPIC": f"test.{unique}.sessions",
        "RECSYS_FEATURES__DEAD_LETTER_TOPIC": f"test.{unique}.dlq",
        "RECSYS_FEATURES__PARTITIONS": "3",
        "RECSYS_FEATURES__SESSION_TIMEOUT_S": "6",
        "RECSYS_BRONZE__TOPIC": p.topic,
        "RECSYS_BRONZE__GROUP_ID": f"test-bronze-{unique}",
        "RECSYS_BRONZE__COMMIT_INTERVAL_S": "1",
        "RECSYS_LAKE__WAREHOUSE": str(tmp_path / "lake"),
        "RECSYS_CASSANDRA__KEYSPACE": p.keyspace,
        "RECSYS_REDIS__KEY_PREFIX": p.key_prefix,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = connect_cassandra(infra.cassandra)
    apply_migrations(client, infra.cassandra, keyspace=p.keyspace)
    asyncio.run(
        create_topics(
            infra,
            [p.topic, *(f"test.{unique}.{kind}" for kind in ("late", "sessions", "dlq"))],
            3,
        )
    )
    try:
        yield p
    finally:
        # Whatever a failed assertion left running (the workers are ours only by record).
        manager.down(p.settings, manager.STREAM_SERVICE_NAMES, progress=lambda _: None)
        drop_keyspace(client, p.keyspace)
        client.close()
        asyncio.run(delete_topics(infra, f"test.{unique}."))
        asyncio.run(delete_topics(infra, f"test-svc-{unique}"))
        asyncio.run(_delete_keys(infra, p.key_prefix))


async def _delete_keys(settings: Settings, prefix: str) -> None:
    redis = Redis(host=settings.redis.host, port=settings.redis.port)
    try:
        async for key in redis.scan_iter(match=f"{prefix}:*"):
            await redis.delete(key)
    finally:
        await redis.aclose()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recsys", "services", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def _status() -> dict[str, dict[str, Any]]:
    result = _cli("status", "--json", *STREAM)
    return {r["name"]: r for r in json.loads(result.stdout)}


def test_up_status_down_of_every_service(platform: Platform) -> None:
    settings = platform.settings
    up = _cli("up", *STREAM)
    assert up.returncode == 0, up.stdout + up.stderr
    for name in SERVICES:
        assert f"{name} started" in " ".join(up.stdout.split()), up.stdout

    rows = _status()
    assert list(rows) == SERVICES
    assert all(r["state"] == "running" and r["pid"] for r in rows.values()), rows
    # Each under its own supervisor (the recorded pid), none restarted.
    assert all(r["service_pid"] not in (None, r["pid"]) for r in rows.values()), rows
    assert all(r["restarts"] == 0 and r["last_exit"] is None for r in rows.values()), rows
    ports = [settings.services.features_port(1), settings.services.features_port(2)]
    assert rows["features-1"]["address"] == f"127.0.0.1:{ports[0]}"
    assert rows["features-2"]["address"] == f"127.0.0.1:{ports[1]}"
    assert rows["bronze"]["address"] == f"127.0.0.1:{settings.services.bronze_metrics_port}"
    state = settings.infra.state_dir
    for name in SERVICES:
        # Its own pid record and log file.
        record = read_record(state / name / "process.json")
        assert record is not None
        assert record.pid == rows[name]["pid"]
        assert record.log == str(state / name / "logs" / f"{name}.out")
        assert Path(record.log).stat().st_size > 0
    # Ready is what the workers export, not a guess: each one's own /metrics says so.
    for port, metric in [
        (ports[0], "recsys_features_ready"),
        (ports[1], "recsys_features_ready"),
        (settings.services.bronze_metrics_port, "recsys_bronze_ready"),
    ]:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert metric_value(text, metric) == 1.0

    # Idempotent: a second `up` only probes them again.
    again = asyncio.run(manager.up(settings, manager.STREAM_SERVICE_NAMES, progress=lambda _: None))
    assert [(r.name, r.action, r.pid) for r in again] == [
        (name, "already running", rows[name]["pid"]) for name in SERVICES
    ]

    # The processes do their jobs: one event through the ingest API reaches the feature store
    # (written by whichever worker owns the member's partition) and the bronze table.
    event_id = str(uuid.uuid4())
    _post_event(settings, event_id, user="svc-user")
    asyncio.run(_wait_for_features(settings, platform.key_prefix, "svc-user"))
    asyncio.run(wait_for(lambda: _bronze_has(settings, event_id), what="the bronze row"))

    # Fewer workers configured now: `down` still stops features-2, which `up` started.
    down = _cli("down", *STREAM, env={"RECSYS_SERVICES__FEATURES_WORKERS": "1"})
    assert down.returncode == 0, down.stdout + down.stderr
    outcome = dict(line.split(None, 1) for line in down.stdout.splitlines())
    assert set(outcome) == set(SERVICES)
    assert all(result in {"stopped", "killed after timeout"} for result in outcome.values())
    for row in rows.values():
        # The supervisor and the service it ran: neither is left.
        for pid in (row["pid"], row["service_pid"]):
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    assert not list(state.glob("*/process.json"))
    assert not list(state.glob("*/supervisor.json"))

    after = _cli("status", "--json", *STREAM)
    assert after.returncode == 1
    assert {r["name"]: r["state"] for r in json.loads(after.stdout)} == {
        "ingest": "stopped",
        "features-1": "stopped",
        "features-2": "stopped",
        "bronze": "stopped",
    }
    assert set(
        manager.down(settings, manager.STREAM_SERVICE_NAMES, progress=lambda _: None).values()
    ) == {"not started by recsys"}


def _post_event(settings: Settings, event_id: str, *, user: str) -> None:
    body = {
        "events": [
            {
                "event_id": event_id,
                "event_type": "play",
                "user_id": user,
                "title_id": "tt0111161",
                "occurred_at": "2024-05-01T12:00:00Z",
                "device": "tv",
                "country": "US",
                "position_sec": 0,
            }
        ]
    }
    response = httpx.post(
        f"{settings.ingest.url}/v1/events", json=body, headers={"X-API-Key": API_KEY}, timeout=10
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1


async def _wait_for_features(settings: Settings, prefix: str, user: str) -> None:
    redis = Redis(host=settings.redis.host, port=settings.redis.port, decode_responses=True)
    key = f"{prefix}:user:{user}:rt"
    try:

        async def stored() -> str | None:
            value = await redis.hget(key, "current_device_type")
            return None if value is None else str(value)

        assert await wait_for(stored, what="the member's features in Redis") == '"tv"'
    finally:
        await redis.aclose()


async def _bronze_has(settings: Settings, event_id: str) -> bool | None:
    def read() -> bool | None:
        catalog = load_catalog(settings.lake)
        identifier = table_identifier(settings.lake, "bronze_events")
        if not catalog.table_exists(identifier):
            return None
        ids = catalog.load_table(identifier).scan().to_arrow().column("event_id").to_pylist()
        return True if event_id in ids else None

    return await asyncio.to_thread(read)


def test_a_worker_that_cannot_start_is_reported_and_not_left_running(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker whose Kafka does not answer waits for it (it does not crash); `up` reports it as
    # not ready, with what it waits for, and stops it.
    monkeypatch.setenv("RECSYS_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{_free_port()}")
    settings = platform.settings
    settings = settings.model_copy(
        update={"infra": settings.infra.model_copy(update={"start_timeout_s": 20.0})}
    )
    with pytest.raises(
        InfraError,
        match=r"(?s)features-1 did not answer within 20s .*not ready.*; last lines of "
        r"\S+/features-1\.out:\n.*waiting_for_dependency.*dependency=kafka.*Unable to bootstrap",
    ):
        asyncio.run(manager.up(settings, ["features-1"], progress=lambda _: None))
    record = read_record(settings.infra.state_dir / "features-1" / "process.json")
    assert record is not None
    assert not record.alive
    (row,) = asyncio.run(manager.status(settings, ["features-1"]))
    assert row.state == "stopped"


def _wait_supervision(
    settings: Settings, name: str, check: Callable[[SupervisorState], bool], what: str
) -> SupervisorState:
    path = settings.infra.state_dir / name / "supervisor.json"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        state = read_state(path)
        if state is not None and check(state):
            return state
        time.sleep(0.1)
    raise AssertionError(f"{name}: no {what} within 180 s; supervisor state: {read_state(path)}")


def _row(settings: Settings, name: str) -> manager.ServerStatus:
    (row,) = asyncio.run(manager.status(settings, [name]))
    return row


def _wait_running(settings: Settings, name: str, *, not_pid: int) -> manager.ServerStatus:
    """Wait until ``name`` answers again from a process other than ``not_pid``."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        row = _row(settings, name)
        if row.state == "running" and row.service_pid not in (None, not_pid):
            return row
        time.sleep(0.2)
    raise AssertionError(f"{name} did not come back within 180 s: {_row(settings, name)}")


def _killed(pid: int) -> None:
    # The handle first: once killed, the supervisor may reap the pid before psutil looks it up.
    process = psutil.Process(pid)
    process.send_signal(signal.SIGKILL)
    psutil.wait_procs([process], timeout=10)


def test_a_service_that_dies_is_restarted_with_backoff_and_down_leaves_nothing(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Short waits for the test, and a long reset window: every exit here counts as in a row.
    monkeypatch.setenv("RECSYS_SERVICES__RESTART_BACKOFF_S", "0.5")
    monkeypatch.setenv("RECSYS_SERVICES__RESTART_BACKOFF_MAX_S", "4")
    monkeypatch.setenv("RECSYS_SERVICES__RESTART_RESET_AFTER_S", "3600")
    settings = platform.settings
    up = _cli("up", "ingest")
    assert up.returncode == 0, up.stdout + up.stderr
    row = _row(settings, "ingest")
    assert (row.state, row.restarts, row.last_exit) == ("running", 0, None)
    supervisor, first = row.pid, row.service_pid
    assert supervisor is not None
    assert first is not None

    # Killed: it comes back by itself, and `status` says that it restarted and why.
    _killed(first)
    row = _wait_running(settings, "ingest", not_pid=first)
    assert (row.pid, row.restarts) == (supervisor, 1)
    assert row.last_exit is not None
    assert (row.last_exit.signal, row.last_exit.restart_in_s) == ("SIGKILL", 0.5)
    text = _cli("status", "ingest")
    assert text.returncode == 0, text.stdout + text.stderr
    assert "running" in text.stdout
    assert "restarted 1 time (last: signal SIGKILL at " in text.stdout, text.stdout
    second = row.service_pid
    assert second is not None

    # Crash loop: with its port taken, every new ingest fails right after it starts. It is
    # restarted after 1, 2, then 4 s, not in a hot loop, and `status` says it waits.
    seen_waiting = False
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _killed(second)
        holder.bind((settings.ingest.host, settings.ingest.port))
        holder.listen()

        def two_bind_failures(state: SupervisorState) -> bool:
            nonlocal seen_waiting
            seen_waiting = seen_waiting or _row(settings, "ingest").state == "restarting"
            return len(state.exits) >= 4

        state = _wait_supervision(settings, "ingest", two_bind_failures, "two failed restarts")
    exits = state.exits[:4]
    assert [(e.signal, e.code) for e in exits[:2]] == [("SIGKILL", None)] * 2
    failed = exits[2].code  # uvicorn's code for a failed startup
    assert failed not in (None, 0)
    assert [(e.signal, e.code) for e in exits[2:]] == [(None, failed)] * 2
    assert any("address already in use" in line for line in exits[2].log_tail), exits[2]
    assert [e.restart_in_s for e in exits] == [0.5, 1.0, 2.0, 4.0]
    for earlier, later in itertools.pairwise(exits):
        assert earlier.restart_in_s is not None
        assert later.at - earlier.at >= earlier.restart_in_s
    assert seen_waiting
    text = _cli("status", "ingest")
    assert f"(last: exit {failed} at " in text.stdout, text.stdout
    assert "address already in use" in text.stdout, text.stdout  # its log's error line

    # The port is free again: the next restart serves, and `down` leaves no process behind.
    row = _wait_running(settings, "ingest", not_pid=second)
    assert row.restarts >= 4
    last = row.service_pid
    assert last is not None
    down = _cli("down", "ingest")
    assert down.returncode == 0, down.stdout + down.stderr
    assert down.stdout.split() == ["ingest", "stopped"]
    for pid in (supervisor, first, second, last):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    # Nothing runs from the test's state directory (the services' working directory) or names
    # it on its command line (the supervisors).
    state_dir = str(settings.infra.state_dir)
    leftovers = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        cmdline, cwd = " ".join(proc.info["cmdline"] or []), proc.info["cwd"] or ""
        if state_dir in cmdline or cwd.startswith(state_dir):
            leftovers.append(proc.info)
    assert leftovers == []
    assert port_is_free(settings.ingest.host, settings.ingest.port)
    assert _row(settings, "ingest").state == "stopped"
