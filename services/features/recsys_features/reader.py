"""Read a member's current real-time features back: Redis first, then Cassandra, then defaults.

A value counts as present while its registry TTL has not run out since it was written (Redis
keeps the whole hash for the longest TTL, so the per-feature TTL is applied here). The age of a
value is now minus the event time it reflects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from recsys.features import FEATURES
from recsys_features.snapshot import USER_FEATURES, ttl_seconds

if TYPE_CHECKING:  # the stores are passed in; importing them here would load both drivers
    from recsys_features.cassandra_store import CassandraFeatureStore
    from recsys_features.redis_store import RedisFeatureStore

__all__ = ["FeatureValue", "read_user_features"]

Source = Literal["redis", "cassandra", "default"]


@dataclass(frozen=True, slots=True)
class FeatureValue:
    name: str
    value: Any
    source: Source
    event_time_ms: int | None
    age_s: float | None  # None for defaults

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "source": self.source,
            "event_time_ms": self.event_time_ms,
            "age_s": self.age_s,
        }


def _fresh(written_ms: int | None, name: str, now_ms: int) -> bool:
    return written_ms is not None and now_ms - written_ms <= ttl_seconds(name) * 1000


async def read_user_features(
    user_id: str,
    *,
    redis_store: RedisFeatureStore | None,
    cassandra_store: CassandraFeatureStore | None,
    now_ms: int,
) -> list[FeatureValue]:
    """Every real-time user feature of ``user_id``; a store passed as None is skipped."""
    out: dict[str, FeatureValue] = {}
    if redis_store is not None:
        values, event_ms, written_ms = await redis_store.read(user_id)
        for name, value in values.items():
            # The watched list has its own key and TTL: present means fresh.
            if name == "recently_watched_title_ids" or _fresh(written_ms, name, now_ms):
                out[name] = _value(name, value, "redis", event_ms, now_ms)
    missing = [n for n in USER_FEATURES if n not in out]
    if missing and cassandra_store is not None:
        rows = await cassandra_store.read(user_id)
        for name in missing:
            row = rows.get(name)
            if row is not None and _fresh(row.written_at_ms, name, now_ms):
                out[name] = _value(name, row.value, "cassandra", row.event_time_ms, now_ms)
    return [
        out.get(name) or FeatureValue(name, _default(name), "default", None, None)
        for name in USER_FEATURES
    ]


def _value(
    name: str, value: Any, source: Source, event_ms: int | None, now_ms: int
) -> FeatureValue:
    age = None if event_ms is None else max(0.0, (now_ms - event_ms) / 1000)
    return FeatureValue(name, value, source, event_ms, age)


def _default(name: str) -> Any:
    default = FEATURES[name].default
    return list(default) if isinstance(default, tuple) else default
