"""Redis from Debian's redis-server package (installed on first use when we are root)."""

from __future__ import annotations

import shutil

from recsys.infra.apt import apt_install
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
        apt_install(PACKAGE)
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
