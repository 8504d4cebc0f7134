"""Serving services as real processes for the tests: start one with its own ports and
settings, wait until its health service says SERVING, stop it with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recsys.infra.server import free_ports

__all__ = ["ServingProcess", "free_port", "free_ports", "health_status", "start_service"]


def free_port() -> int:
    return free_ports(1)[0]


def health_status(address: str, timeout_s: float = 2.0) -> int | None:
    """The health service's status, or None if nothing answers."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s
            )
        except grpc.RpcError:
            return None
    return int(reply.status)


@dataclass
class ServingProcess:
    name: str
    address: str
    metrics_port: int
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def wait_serving(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.process.returncode}: {self.tail()}")
            if health_status(self.address, 1.0) == health_pb2.HealthCheckResponse.SERVING:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not SERVING after {timeout_s} s: {self.tail()}")

    def terminate(self, timeout_s: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def start_service(
    name: str, log_dir: Path, env: dict[str, str], *, ports: tuple[int, int] | None = None
) -> ServingProcess:
    """``recsys-<name>`` on free ports (or ``ports``: listener, metrics), with ``env``
    (RECSYS_ settings) over the test's own."""
    port, metrics_port = ports or free_ports(2)
    section = name.upper()
    full = {
        **os.environ,
        "RECSYS_LOG__FORMAT": "console",
        f"RECSYS_{section}__PORT": str(port),
        f"RECSYS_{section}__METRICS_PORT": str(metrics_port),
        **env,
    }
    log = log_dir / f"{name}-{port}.log"
    script = Path(sys.executable).parent / f"recsys-{name}"
    with log.open("ab") as out:
        process = subprocess.Popen([str(script)], env=full, stdout=out, stderr=subprocess.STDOUT)
    return ServingProcess(name, f"127.0.0.1:{port}", metrics_port, process, log, env)
