"""Start, find and stop the local servers by pid, and only the ones we started.

A started server is recorded as ``<state>/<name>/process.json`` holding its pid and the
process's creation time; a pid that now belongs to another program (pid reuse after a reboot)
does not match the creation time and is treated as gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

__all__ = ["ProcessRecord", "describe_listener", "read_record", "spawn", "terminate"]


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    pid: int
    create_time: float
    started_at: float
    argv: list[str]
    log: str
    address: str  # host:port it serves, to notice a changed setting while it runs

    def process(self) -> psutil.Process | None:
        """The live process this record names, or None if it has exited or the pid was reused."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 1.0:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None

    @property
    def alive(self) -> bool:
        return self.process() is not None


def read_record(path: Path) -> ProcessRecord | None:
    try:
        return ProcessRecord(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        # A torn or foreign file: ignore it rather than act on a pid we cannot trust.
        return None


def spawn(
    argv: list[str],
    *,
    address: str,
    record_path: Path,
    log_path: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
) -> ProcessRecord:
    """Start ``argv`` detached from our session (it outlives this command) and record its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record = ProcessRecord(
        pid=proc.pid,
        create_time=psutil.Process(proc.pid).create_time(),
        started_at=time.time(),
        argv=argv,
        log=str(log_path),
        address=address,
    )
    tmp = record_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2))
    tmp.replace(record_path)
    return record


def terminate(record: ProcessRecord, *, timeout_s: float) -> str:
    """SIGTERM the recorded process, SIGKILL it and its children if any outlives ``timeout_s``.

    Only the recorded process gets SIGTERM: stopping its children is its own job (a service's
    supervisor forwards it, so the service gets one SIGTERM, from the process that knows it is
    being stopped and must not restart it).
    """
    proc = record.process()
    if proc is None:
        return "not running"
    family = [proc, *proc.children(recursive=True)]
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.terminate()
    _, alive = psutil.wait_procs(family, timeout=timeout_s)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    return "killed after timeout" if alive else "stopped"


def describe_listener(port: int) -> str:
    """Who listens on ``port``: pid and command line, for an actionable error message."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return f"port {port}: owner unknown"
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return f"port {port}: owner unknown"
            try:
                cmdline = " ".join(psutil.Process(conn.pid).cmdline())
            except psutil.Error:
                cmdline = "?"
            return f"port {port}: pid {conn.pid} `{cmdline[:160]}`"
    return f"port {port}: owner unknown"
