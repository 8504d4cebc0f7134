"""The online stores' layout, shared by their writers and their readers.

The stream job (services/features) writes members' real-time values to Redis (the hot copy) and
to Cassandra (the durable copy); the daily job (services/pipelines) writes batch values to
Cassandra. The feature store (services/featurestore) reads all of them back. Key names, row names
and the decoding live here once, so a writer and a reader cannot disagree (docs/redis-keys.md,
docs/batch-features.md).

Redis, per member: a hash ``<prefix>:user:<id>:rt`` with every real-time feature but the watched
list (JSON values, plus the event time and write time of the snapshot) and a list
``<prefix>:user:<id>:watched``. Cassandra ``online_features``, per entity one partition with up
to three rows: ``_realtime`` (the stream job's copy), ``_batch`` (lookback features, TTL 2 days)
and ``_static`` (attributes), each a JSON object of registry name -> value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from recsys.features.definitions import FEATURES
from recsys.features.registry import Entity, FeatureKind

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from recsys.clients.cassandra import CassandraClient

__all__ = [
    "BATCH_ROW",
    "EVENT_TIME_FIELD",
    "HASH_FEATURES",
    "LIST_FEATURE",
    "REALTIME_ROW",
    "STATIC_ROW",
    "USER_FEATURES",
    "WRITTEN_AT_FIELD",
    "RedisSnapshot",
    "StoredRow",
    "feature_event_time",
    "read_partition",
    "read_redis_user",
    "rt_key",
    "ttl_seconds",
    "watched_key",
]

# The real-time user features, from the registry; recently_watched_title_ids has its own Redis
# list so its 30-day TTL does not keep the short-lived hash alive.
USER_FEATURES: tuple[str, ...] = tuple(
    f.name for f in FEATURES.select(entity=Entity.USER, kind=FeatureKind.REALTIME)
)
LIST_FEATURE = "recently_watched_title_ids"
HASH_FEATURES: tuple[str, ...] = tuple(n for n in USER_FEATURES if n != LIST_FEATURE)

EVENT_TIME_FIELD = "_event_time_ms"
WRITTEN_AT_FIELD = "_written_at_ms"

# Cassandra row names; not registry names (those are snake_case without a leading "_").
REALTIME_ROW = "_realtime"
BATCH_ROW = "_batch"
STATIC_ROW = "_static"

_SELECT_PARTITION = (
    "SELECT name, value, event_time, written_at FROM {ks}.online_features "
    "WHERE entity = ? AND entity_id = ?"
)


def feature_event_time(feature_date: date) -> datetime:
    """The event time of a daily value: the end of its feature date (UTC); every value of the
    day reflects events before it."""
    return datetime.combine(feature_date + timedelta(days=1), time(), UTC)


def ttl_seconds(name: str) -> int:
    """The registry TTL of a feature that has one, in seconds."""
    ttl = FEATURES[name].ttl
    if ttl is None:
        raise ValueError(f"feature {name} has no TTL")
    return int(ttl / timedelta(seconds=1))


def rt_key(prefix: str, user_id: str) -> str:
    return f"{prefix}:user:{user_id}:rt"


def watched_key(prefix: str, user_id: str) -> str:
    return f"{prefix}:user:{user_id}:watched"


@dataclass(frozen=True, slots=True)
class RedisSnapshot:
    """A member's real-time values as Redis holds them (TTLs not applied)."""

    values: dict[str, Any]
    event_time_ms: int | None
    written_at_ms: int | None


async def read_redis_user(redis: Redis, prefix: str, user_id: str) -> RedisSnapshot:
    """One member's hash and watched list in one round trip (a pipeline)."""
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(rt_key(prefix, user_id))
    pipe.lrange(watched_key(prefix, user_id), 0, -1)
    raw, watched = await pipe.execute()
    fields = {_text(k): v for k, v in raw.items()}
    values: dict[str, Any] = {
        name: orjson.loads(fields[name]) for name in HASH_FEATURES if name in fields
    }
    if watched:
        values[LIST_FEATURE] = [_text(t) for t in watched]
    event_ms = int(fields[EVENT_TIME_FIELD]) if EVENT_TIME_FIELD in fields else None
    written_ms = int(fields[WRITTEN_AT_FIELD]) if WRITTEN_AT_FIELD in fields else None
    return RedisSnapshot(values, event_ms, written_ms)


@dataclass(frozen=True, slots=True)
class StoredRow:
    """One row of an entity's partition: registry name -> value, and its two instants."""

    values: dict[str, Any]
    event_time_ms: int
    written_at_ms: int


async def read_partition(
    client: CassandraClient, keyspace: str, entity: Entity, entity_id: str
) -> dict[str, StoredRow]:
    """Every row of one entity's partition (``_realtime``, ``_batch``, ``_static``) in one query."""
    rows = await client.execute(_SELECT_PARTITION.format(ks=keyspace), (entity.value, entity_id))
    return {
        row["name"]: StoredRow(
            orjson.loads(row["value"]), _epoch_ms(row["event_time"]), _epoch_ms(row["written_at"])
        )
        for row in rows
    }


def _epoch_ms(value: Any) -> int:
    return int(value.replace(tzinfo=UTC).timestamp() * 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
