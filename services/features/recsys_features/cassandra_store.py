"""The durable copy of members' real-time features in Cassandra (table ``online_features``).

All of a member's real-time values are one row, ``name = '_realtime'``, whose ``value`` is a JSON
object of registry name -> value, beside the member's batch-feature rows in the same partition
(one query reads both). One row per member rather than one per feature: the driver's cost is per
row, and seven rows per member cost more CPU than folding the member's events. The row's TTL is
the longest of the features' TTLs; readers apply each feature's own TTL against ``written_at``
(as they do for the Redis hash). Rows of many members go in unlogged batches of at most
:data:`BATCH_BYTES` of values (under Cassandra's default 50 KiB batch limit), run concurrently.
Values are absolute, so a replay writes the same cells again (idempotent).
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
from recsys.features.online import REALTIME_ROW, read_partition
from recsys_features.snapshot import USER_FEATURES, FeatureSnapshot, ttl_seconds

__all__ = ["BATCH_BYTES", "REALTIME_ROW", "CassandraFeatureStore", "StoredFeature"]

BATCH_BYTES = 32 * 1024

_INSERT = (
    "INSERT INTO {ks}.online_features (entity, entity_id, name, value, event_time, written_at) "
    "VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
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
        self._keyspace = keyspace
        self._ttl = max(ttl_seconds(name) for name in USER_FEATURES)

    async def write(self, snapshots: Sequence[FeatureSnapshot], *, written_at_ms: int) -> None:
        if not snapshots:
            return
        insert = self._client.prepare(self._insert)
        user = Entity.USER.value
        batches: list[BatchStatement] = []
        batch, size = BatchStatement(batch_type=BatchType.UNLOGGED), 0
        for snap in snapshots:
            value = orjson.dumps({name: snap.values[name] for name in USER_FEATURES}).decode()
            if size and size + len(value) > BATCH_BYTES:
                batches.append(batch)
                batch, size = BatchStatement(batch_type=BatchType.UNLOGGED), 0
            row = (user, snap.user_id, REALTIME_ROW, value, snap.event_time_ms, written_at_ms)
            batch.add(insert, (*row, self._ttl))
            size += len(value)
        batches.append(batch)
        await asyncio.gather(*(self._client.run(b) for b in batches))

    async def read(self, user_id: str) -> dict[str, StoredFeature]:
        """The member's stored real-time values (every feature written, TTLs not applied)."""
        rows = await read_partition(self._client, self._keyspace, Entity.USER, user_id)
        row = rows.get(REALTIME_ROW)
        if row is None:
            return {}
        return {
            name: StoredFeature(value, row.event_time_ms, row.written_at_ms)
            for name, value in row.values.items()
            if name in USER_FEATURES
        }
