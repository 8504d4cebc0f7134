"""Has the bronze lake caught up with the events topic?

The bronze writer stores in every commit's snapshot summary the next Kafka offset to read for
every partition it has received (``recsys.bronze.offsets``, docs/bronze-lake.md): that is the
table's committed position. The topic's end offsets (last stable offsets, read_committed) are what
the ingest has accepted. When every partition's position has reached the end offset seen at the
start of the wait, everything accepted before the wait began is in bronze.

    lag = wait_for_bronze(settings, catalog, timeout_s=600, progress=print)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table.snapshots import ancestors_of

from recsys.config import KafkaSettings, LakeSettings, Settings
from recsys.lake import table_identifier
from recsys.topics import EVENTS
from recsys_pipelines.errors import PipelineError

__all__ = [
    "BRONZE_OFFSETS_PROPERTY",
    "Lag",
    "bronze_position",
    "topic_end_offsets",
    "wait_for_bronze",
]

# Written by the bronze writer (recsys_bronze.offsets); a documented contract, read here
# without importing another service's internals.
BRONZE_OFFSETS_PROPERTY = "recsys.bronze.offsets"


@dataclass(frozen=True)
class Lag:
    """Records of the topic (up to ``end``) that bronze has not committed yet."""

    end: Mapping[int, int]  # partition -> end offset
    held: Mapping[int, int]  # partition -> bronze's next offset

    @property
    def behind(self) -> dict[int, int]:
        return {p: e - self.held.get(p, 0) for p, e in self.end.items() if e > self.held.get(p, 0)}

    @property
    def total(self) -> int:
        return sum(self.behind.values())

    def describe(self) -> str:
        worst = sorted(self.behind.items(), key=lambda kv: -kv[1])[:3]
        parts = ", ".join(f"partition {p}: {n}" for p, n in worst)
        return f"{self.total} records behind ({parts})" if worst else "caught up"


def bronze_position(catalog: Catalog, lake: LakeSettings, table: str, topic: str) -> dict[int, int]:
    """partition -> next offset bronze will read, from the newest snapshot carrying offsets;
    empty when the table does not exist or has never committed."""
    try:
        bronze = catalog.load_table(table_identifier(lake, table))
    except NoSuchTableError:
        return {}
    for snapshot in ancestors_of(bronze.current_snapshot(), bronze.metadata):
        text = snapshot.summary.get(BRONZE_OFFSETS_PROPERTY) if snapshot.summary else None
        if text is None:
            continue
        try:
            partitions = json.loads(text).get(topic, {})
            return {int(p): int(o) for p, o in partitions.items()}
        except (ValueError, AttributeError, TypeError) as exc:
            raise PipelineError(
                f"bronze snapshot {snapshot.snapshot_id} has a malformed "
                f"{BRONZE_OFFSETS_PROPERTY}: {exc}"
            ) from None
    return {}


async def topic_end_offsets(settings: KafkaSettings, topic: str) -> dict[int, int]:
    """partition -> end offset (last stable offset) of ``topic``."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from recsys.clients.kafka import kafka_admin

    admin = kafka_admin(settings)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [p["partition"] for t in described if not t["error_code"] for p in t["partitions"]]
    if not partitions:
        raise PipelineError(f"Kafka topic {topic} does not exist: run `recsys infra bootstrap`")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-bootstrap",
        enable_auto_commit=False,
        isolation_level="read_committed",
        request_timeout_ms=settings.request_timeout_ms,
    )
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assigned)  # no group: only so the client fetches their metadata
        ends = await consumer.end_offsets(assigned)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


def wait_for_bronze(
    settings: Settings,
    catalog: Catalog,
    *,
    timeout_s: float,
    poll_s: float = 2.0,
    topic: str = EVENTS.name,
    progress: Callable[[str], None] = lambda _: None,
) -> Lag:
    """Wait until bronze holds everything the topic held when the wait began; PipelineError
    after ``timeout_s`` with how far behind it still is."""
    try:
        end = asyncio.run(asyncio.wait_for(topic_end_offsets(settings.kafka, topic), 60))
    except PipelineError:
        raise
    except Exception as exc:  # unreachable broker, timeout: one line, not a traceback
        raise PipelineError(
            f"cannot read the end offsets of {topic} from {settings.kafka.bootstrap_servers}: "
            f"{exc!r}"
        ) from None
    deadline = time.monotonic() + timeout_s
    table = settings.pipelines.bronze_table
    said = ""
    while True:
        lag = Lag(end, bronze_position(catalog, settings.lake, table, topic))
        if lag.total == 0:
            return lag
        if time.monotonic() >= deadline:
            raise PipelineError(
                f"the bronze lake is still {lag.describe()} on {topic} after {timeout_s:g} s: "
                "is the bronze writer running? (`recsys services up bronze`, "
                "`recsys services status`; RECSYS_MODELS__CATCHUP_TIMEOUT_S to wait longer)"
            )
        if lag.describe() != said:  # a line when it moves, not one per poll
            said = lag.describe()
            progress(f"waiting for the bronze lake: {said}")
        time.sleep(poll_s)
