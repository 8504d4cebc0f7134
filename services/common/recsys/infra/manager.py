"""Bring the local infrastructure up, report on it and take it down.

report = await up(settings)          # idempotent: running servers are left as they are
for s in status(settings): print(s)
down(settings)                       # stops only the processes `up` started, by pid
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from recsys.config import Settings
from recsys.infra.cassandra import CassandraServer
from recsys.infra.kafka import KafkaServer
from recsys.infra.process import describe_listener, read_record, spawn, terminate
from recsys.infra.redis import RedisServer
from recsys.infra.server import InfraError, Server, port_is_free
from recsys.infra.services import IngestService

__all__ = [
    "SERVER_NAMES",
    "SERVICE_NAMES",
    "ServerStatus",
    "StartResult",
    "down",
    "servers",
    "status",
    "up",
]

# Infrastructure first, then the platform's services that depend on it.
SERVER_NAMES = ("kafka", "cassandra", "redis")
SERVICE_NAMES = ("ingest",)
_ALL = (*SERVER_NAMES, *SERVICE_NAMES)
_LOG_TAIL_LINES = 30

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class StartResult:
    name: str
    address: str
    action: str  # "started" or "already running"
    seconds: float
    pid: int
    log: str
    note: str


@dataclass(frozen=True, slots=True)
class ServerStatus:
    name: str
    address: str
    state: str  # "running", "not answering", "stopped"
    pid: int | None
    uptime_s: float | None
    log: str
    data_dir: str


def servers(settings: Settings, names: Iterable[str] | None = None) -> list[Server]:
    """The named processes (default: the infrastructure servers), in dependency order."""
    wanted = list(names or SERVER_NAMES)
    unknown = sorted(set(wanted) - set(_ALL))
    if unknown:
        raise InfraError(f"unknown server(s) {unknown}; choose from {list(_ALL)}")
    by_name: dict[str, Server] = {
        "kafka": KafkaServer(settings),
        "cassandra": CassandraServer(settings),
        "redis": RedisServer(settings),
        "ingest": IngestService(settings),
    }
    return [by_name[n] for n in _ALL if n in wanted]


async def up(
    settings: Settings, names: Iterable[str] | None = None, progress: Progress = print
) -> list[StartResult]:
    """Start what is not running, in parallel, and wait until each answers a real request."""
    chosen = servers(settings, names)
    results = await asyncio.gather(*(_start(s, settings, progress) for s in chosen))
    return list(results)


async def _start(server: Server, settings: Settings, progress: Progress) -> StartResult:
    t0 = time.monotonic()
    record = read_record(server.record_path)
    if record is not None and record.alive:
        if record.address != server.address:
            raise InfraError(
                f"{server.name} already runs from this checkout on {record.address}, not on "
                f"{server.address}; stop it first (`recsys infra down {server.name}`)"
            )
        await _wait_ready(server, settings.infra.start_timeout_s, t0)
        return StartResult(
            server.name,
            server.address,
            "already running",
            time.monotonic() - t0,
            record.pid,
            record.log,
            "",
        )
    busy = [p for p in server.ports if not port_is_free(_host(server), p)]
    if busy:
        holders = "; ".join(describe_listener(p) for p in busy)
        raise InfraError(
            f"{server.name}: port(s) {busy} are in use by a process this checkout's recsys did "
            f"not start ({holders}); stop it or choose other ports (see docs/infrastructure.md)"
        )
    progress(f"{server.name}: preparing")
    note = await asyncio.to_thread(server.prepare)
    argv = await asyncio.to_thread(server.argv)
    record = spawn(
        argv,
        address=server.address,
        record_path=server.record_path,
        log_path=server.log_path,
        cwd=server.home,
    )
    progress(
        f"{server.name}: started pid {record.pid}, waiting for it to answer on {server.address}"
    )
    try:
        await _wait_ready(
            server, settings.infra.start_timeout_s, t0, pid_alive=lambda: record.alive
        )
    except InfraError:
        terminate(record, timeout_s=settings.infra.stop_timeout_s)
        raise
    return StartResult(
        server.name, server.address, "started", time.monotonic() - t0, record.pid, record.log, note
    )


async def _wait_ready(
    server: Server,
    timeout_s: float,
    t0: float,
    pid_alive: Callable[[], bool] | None = None,
) -> None:
    last_error: BaseException | None = None
    while time.monotonic() - t0 < timeout_s:
        if pid_alive is not None and not pid_alive():
            raise InfraError(
                f"{server.name} exited during startup; last lines of {server.log_path}:\n"
                + _tail(server)
            )
        try:
            await asyncio.wait_for(server.probe(), timeout=5)
            return
        except Exception as exc:  # any failure means "not yet"; the timeout decides
            last_error = exc
        await asyncio.sleep(0.5)
    raise InfraError(
        f"{server.name} did not answer within {timeout_s:.0f}s (last error: {last_error!r}); "
        f"last lines of {server.log_path}:\n{_tail(server)}"
    )


def _tail(server: Server) -> str:
    try:
        lines = server.log_path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:])


def _host(server: Server) -> str:
    return server.address.rsplit(":", 1)[0]


def down(
    settings: Settings, names: Iterable[str] | None = None, progress: Progress = print
) -> dict[str, str]:
    """Stop the servers we started (by recorded pid); anything else is left alone."""
    outcome: dict[str, str] = {}
    # Reverse order: clients of Kafka and Cassandra go first in later issues.
    for server in reversed(servers(settings, names)):
        record = read_record(server.record_path)
        if record is None:
            outcome[server.name] = "not started by recsys"
            continue
        result = terminate(record, timeout_s=settings.infra.stop_timeout_s)
        server.record_path.unlink(missing_ok=True)
        outcome[server.name] = result
        progress(f"{server.name}: {result}")
    return outcome


async def status(settings: Settings, names: Iterable[str] | None = None) -> list[ServerStatus]:
    """Each server's state; "running" means its pid is ours and it answered a request."""
    return list(await asyncio.gather(*(_status(s) for s in servers(settings, names))))


async def _status(server: Server) -> ServerStatus:
    record = read_record(server.record_path)
    state, pid, uptime = "stopped", None, None
    if record is not None and record.alive:
        pid, uptime = record.pid, time.time() - record.started_at
        try:
            await asyncio.wait_for(server.probe(), timeout=5)
            state = "running"
        except Exception:
            state = "not answering"
    return ServerStatus(
        server.name, server.address, state, pid, uptime, str(server.log_dir), str(server.data_dir)
    )
