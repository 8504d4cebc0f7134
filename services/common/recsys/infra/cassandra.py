"""Apache Cassandra 5.0 on the local JVM from Maven Central jars."""

from __future__ import annotations

import asyncio
import string
from pathlib import Path

from recsys.infra.java import java_binary
from recsys.infra.maven import resolve_classpath
from recsys.infra.server import RESOURCES, InfraError, Server, quiet

__all__ = ["CassandraServer"]

MAIN_CLASS = "org.apache.cassandra.service.CassandraDaemon"


class CassandraServer(Server):
    name = "cassandra"

    @property
    def address(self) -> str:
        return f"{self.settings.cassandra.contact_points[0]}:{self.settings.cassandra.port}"

    @property
    def ports(self) -> list[int]:
        return [self.settings.cassandra.port, self.settings.cassandra.storage_port]

    def _jars(self) -> tuple[list[Path], bool]:
        return resolve_classpath(
            RESOURCES / "cassandra" / "pom.xml", self.settings.infra.cache_dir, name="cassandra"
        )

    def prepare(self) -> str:
        self.ensure_dirs()
        _, fresh = self._jars()
        c = self.settings.cassandra
        template = string.Template((RESOURCES / "cassandra" / "cassandra.yaml.tmpl").read_text())
        (self.conf_dir / "cassandra.yaml").write_text(
            template.substitute(
                host=c.contact_points[0],
                native_port=c.port,
                storage_port=c.storage_port,
                data_dir=self.data_dir,
                cluster_name="recsys-local",
            )
        )
        return "resolved classpath from Maven Central" if fresh else "classpath cached"

    def argv(self) -> list[str]:
        jars, _ = self._jars()
        jamm = next((j for j in jars if j.name.startswith("jamm-")), None)
        if jamm is None:
            raise InfraError("the Cassandra classpath has no jamm jar (needed as -javaagent)")
        c = self.settings.cassandra
        return [
            str(java_binary()),
            # Cassandra locks its memory when run as root, so all of -Xms becomes resident at
            # boot; a small floor keeps an idle node near 0.7 GB instead of the whole heap.
            f"-Xms{c.heap_min}",
            f"-Xmx{c.heap}",
            *_jvm_options(RESOURCES / "cassandra" / "jvm17.options"),
            f"-javaagent:{jamm}",
            f"-Dcassandra.config={(self.conf_dir / 'cassandra.yaml').as_uri()}",
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.logdir={self.log_dir}",
            f"-Dcassandra.storagedir={self.data_dir}",
            f"-Dlogback.configurationFile={RESOURCES / 'cassandra' / 'logback.xml'}",
            "-cp",
            ":".join(str(j) for j in jars),
            MAIN_CLASS,
        ]

    async def probe(self) -> None:
        await asyncio.to_thread(self._query)

    def _query(self) -> None:
        # Imported here: cassandra-driver (and the numpy it loads) costs the CLI ~0.5 s to import.
        from cassandra.cluster import Cluster

        c = self.settings.cassandra
        cluster = Cluster(
            contact_points=c.contact_points, port=c.port, connect_timeout=2, protocol_version=5
        )
        # The driver logs every refused connection while the node boots; the caller retries.
        with quiet("cassandra"):
            try:
                row = cluster.connect().execute("SELECT release_version FROM system.local").one()
            finally:
                cluster.shutdown()
        if row is None:
            raise InfraError("Cassandra answered without a release_version")


def _jvm_options(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]
