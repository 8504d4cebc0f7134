"""The durable copy of members' real-time features in Cassandra (table ``online_features``).

One row per (member, feature) with the registry TTL; all of a member's rows go in one unlogged
single-partition batch, and the batches of a flush run concurrently. Rows are overwritten with
absolute values, so a replay writes the same cells again (idempotent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from cassandra.query import BatchStatement, BatchType

from recsys.clients.cassandra import CassandraClient
from recsys.features import Entity
from recsys_features.snapshot import USER_FEATURES, FeatureSnapshot, ttl_seconds

__all__ = ["CassandraFeatureStore", "StoredFeature"]

_INSERT = (
    "INSERT INTO {ks}.online_features (entity, entity_id, name, value, event_time, written_at) "
    "VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
)
_SELECT = (
    "SELECT name, value, event_time, written_at FROM {ks}.online_features "
    "WHERE entity = ? AND entity_id = ?"
)


@dataclass(frozen=True, slots=True)
class StoredFeature:
    value: Any
    event_time_ms: int
    written_at_ms: int


class CassandraFeatureStore:
    def __init__(self, client: CassandraClient, keyspace: str) -> None:
        self._client = client
        self._insert = _INSERT.format(ks=keyspace)
        self._select = _SELECT.format(ks=keyspace)
        self._ttls = {name: ttl_seconds(name) for name in USER_FEATURES}

    async def write(self, snapshots: Sequence[FeatureSnapshot], *, written_at_ms: int) -> None:
        if not snapshots:
            return
        insert = self._client.prepare(self._insert)
        futures = []
        for snap in snapshots:
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for name in USER_FEATURES:
                batch.add(
                    insert,
                    (
                        Entity.USER.value,
                        snap.user_id,
                        name,
                        orjson.dumps(snap.values[name]).decode(),
                        snap.event_time_ms,
                        written_at_ms,
                        self._ttls[name],
                    ),
                )
            futures.append(_wrap(self._client.session.execute_async(batch)))
        await asyncio.gather(*futures)

    async def read(self, user_id: str) -> dict[str, StoredFeature]:
        rows = await self._client.execute(self._select, (Entity.USER.value, user_id))
        return {
            row["name"]: StoredFeature(
                value=orjson.loads(row["value"]),
                event_time_ms=_epoch_ms(row["event_time"]),
                written_at_ms=_epoch_ms(row["written_at"]),
            )
            for row in rows
            if row["name"] in self._ttls
        }


def _epoch_ms(value: Any) -> int:
    from datetime import UTC

    return int(value.replace(tzinfo=UTC).timestamp() * 1000)


def _wrap(response: Any) -> asyncio.Future[None]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def _settle(exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is None:
            future.set_result(None)
        else:
            future.set_exception(exc)

    response.add_callbacks(
        lambda _rows: loop.call_soon_threadsafe(_settle, None),
        lambda exc: loop.call_soon_threadsafe(_settle, exc),
    )
    return future
