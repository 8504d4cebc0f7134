"""Redis from Debian's redis-server package (installed on first use when we are root)."""

from __future__ import annotations

import os
import shutil
import subprocess

from recsys.infra.server import InfraError, Server

__all__ = ["RedisServer"]

PACKAGE = "redis-server"


class RedisServer(Server):
    name = "redis"

    @property
    def address(self) -> str:
        return f"{self.settings.redis.host}:{self.settings.redis.port}"

    @property
    def ports(self) -> list[int]:
        return [self.settings.redis.port]

    def prepare(self) -> str:
        self.ensure_dirs()
        if shutil.which("redis-server"):
            return "redis-server found"
        _apt_install(PACKAGE)
        return f"installed {PACKAGE} with apt-get"

    def argv(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise InfraError("redis-server is not installed")
        r = self.settings.redis
        return [
            binary,
            "--bind",
            r.host,
            "--port",
            str(r.port),
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
            "--logfile",
            str(self.log_dir / "redis.log"),
            # The online store is rebuilt from Kafka and Cassandra; an append-only file keeps a
            # restart warm without the fork pauses of frequent RDB snapshots.
            "--appendonly",
            "yes",
            "--save",
            "",
            "--protected-mode",
            "yes",
        ]

    async def probe(self) -> None:
        from redis.asyncio import Redis  # heavy; only `infra up|status` need it

        client = Redis(
            host=self.settings.redis.host, port=self.settings.redis.port, socket_timeout=1
        )
        try:
            if not await client.ping():
                raise InfraError("redis did not answer PING")
        finally:
            await client.aclose()


def _apt_install(package: str) -> None:
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise InfraError(
            f"{package} is not installed and cannot be installed automatically here; "
            f"install it with your package manager (Debian: sudo apt-get install {package})"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", "--no-install-recommends", package]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run([apt, "update", "-q"], env=env, capture_output=True, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise InfraError(f"apt-get install {package} failed:\n{result.stderr[-2000:]}")
