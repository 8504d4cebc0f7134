"""Apache Kafka 4 in KRaft mode (one combined broker + controller) from Maven Central jars."""

from __future__ import annotations

import base64
import string
import subprocess
import uuid

from recsys.infra.java import java_binary
from recsys.infra.maven import resolve_classpath
from recsys.infra.server import RESOURCES, InfraError, Server, quiet

__all__ = ["KafkaServer"]

MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


class KafkaServer(Server):
    name = "kafka"

    @property
    def address(self) -> str:
        return f"{self.settings.kafka.host}:{self.settings.kafka.port}"

    @property
    def ports(self) -> list[int]:
        return [self.settings.kafka.port, self.settings.kafka.controller_port]

    @property
    def _properties(self) -> str:
        return str(self.conf_dir / "server.properties")

    def _classpath(self) -> tuple[str, bool]:
        jars, fresh = resolve_classpath(
            RESOURCES / "kafka" / "pom.xml", self.settings.infra.cache_dir, name="kafka"
        )
        return ":".join(str(j) for j in jars), fresh

    def prepare(self) -> str:
        self.ensure_dirs()
        classpath, fresh = self._classpath()
        k = self.settings.kafka
        template = string.Template((RESOURCES / "kafka" / "server.properties.tmpl").read_text())
        (self.conf_dir / "server.properties").write_text(
            template.substitute(
                host=k.host,
                port=k.port,
                controller_port=k.controller_port,
                log_dir=self.data_dir,
                node_id=1,
            )
        )
        notes = ["resolved classpath from Maven Central" if fresh else "classpath cached"]
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage(classpath)
            notes.append("formatted KRaft storage")
        return ", ".join(notes)

    def _format_storage(self, classpath: str) -> None:
        cluster_id = _cluster_id()
        cmd = [
            str(java_binary()),
            "-cp",
            classpath,
            STORAGE_TOOL,
            "format",
            "-t",
            cluster_id,
            "-c",
            self._properties,
            "--ignore-formatted",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise InfraError(f"formatting Kafka storage failed:\n{result.stderr[-2000:]}")

    def argv(self) -> list[str]:
        classpath, _ = self._classpath()
        heap = self.settings.kafka.heap
        return [
            str(java_binary()),
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.log_dir}",
            f"-Dlog4j2.configurationFile={RESOURCES / 'kafka' / 'log4j2.properties'}",
            "-cp",
            classpath,
            MAIN_CLASS,
            self._properties,
        ]

    async def probe(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient  # heavy; only `infra up|status` need it

        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.address, request_timeout_ms=2000, client_id="recsys-probe"
        )
        with quiet("aiokafka"):
            await admin.start()
            try:
                cluster = await admin.describe_cluster()
            finally:
                await admin.close()
        if not cluster.get("brokers"):
            raise InfraError("Kafka answered metadata without brokers")


def _cluster_id() -> str:
    """A random Kafka cluster id: URL-safe base64 of a UUID, as `StorageTool random-uuid` makes.

    Like Kafka's own generator, reject ids that start with "-": the format tool would read
    one as a command-line option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id
