"""What every local server looks like to the infra manager."""

from __future__ import annotations

import abc
import contextlib
import logging
import random
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recsys.config import Settings

__all__ = ["InfraError", "Server", "port_is_free", "quiet"]

RESOURCES = Path(__file__).parent / "resources"


class InfraError(RuntimeError):
    """A server could not be prepared, started or reached; the message says what to do."""


class Server(abc.ABC):
    """One server process the repo runs on loopback with its data under the state directory."""

    name: str
    # Run under recsys.infra.supervise, which restarts it when it exits (the platform's services;
    # the infrastructure servers are not: a crashed Kafka or Cassandra wants a person's look).
    supervised = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.infra.state_dir / self.name
        self.data_dir = self.home / "data"
        self.log_dir = self.home / "logs"
        self.conf_dir = self.home / "conf"
        self.record_path = self.home / "process.json"
        self.supervisor_path = self.home / "supervisor.json"  # restarts and exits, if supervised

    @property
    def log_path(self) -> Path:
        """The file the process's stdout and stderr go to."""
        return self.log_dir / f"{self.name}.out"

    @property
    @abc.abstractmethod
    def address(self) -> str:
        """host:port clients use."""

    @property
    @abc.abstractmethod
    def ports(self) -> list[int]:
        """Every port the server binds; checked free before it starts."""

    @abc.abstractmethod
    def prepare(self) -> str:
        """Install or resolve what is missing and write config; idempotent. Returns a note."""

    @abc.abstractmethod
    def argv(self) -> list[str]:
        """The command line that runs the server in the foreground."""

    @abc.abstractmethod
    async def probe(self) -> None:
        """Return when the server answers a real request; raise when it does not (yet)."""

    def env(self) -> dict[str, str]:
        """Variables added to the inherited environment of the process (its own settings)."""
        return {}

    def ensure_dirs(self) -> None:
        for d in (self.data_dir, self.log_dir, self.conf_dir):
            d.mkdir(parents=True, exist_ok=True)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


# Below Linux's ephemeral range (32768-60999 by default): a port chosen here is not taken a moment
# later as the local port of some outgoing connection, as a port from bind(0) can be.
_SPARE_PORTS = range(20_000, 32_000)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports on ``host`` that nothing listens on, for processes started next
    (tests and benchmarks run services on them beside the default ones)."""
    chosen: list[int] = []
    for port in random.sample(_SPARE_PORTS, len(_SPARE_PORTS)):
        if port_is_free(host, port):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise InfraError(f"fewer than {count} free ports in {_SPARE_PORTS}")


@contextlib.contextmanager
def quiet(logger_name: str) -> Iterator[None]:
    """Silence a client library while probing a server that is expected to refuse at first."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)
