"""What the stream job writes per member: feature values as of an event time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from recsys.features import FEATURES, Entity, FeatureKind

__all__ = [
    "HASH_FEATURES",
    "LIST_FEATURE",
    "USER_FEATURES",
    "FeatureSnapshot",
    "ttl_seconds",
]

# The real-time user features, from the registry; recently_watched_title_ids has its own Redis
# list (docs/redis-keys.md) so its 30-day TTL does not keep the short-lived hash alive.
USER_FEATURES: tuple[str, ...] = tuple(
    f.name for f in FEATURES.select(entity=Entity.USER, kind=FeatureKind.REALTIME)
)
LIST_FEATURE = "recently_watched_title_ids"
HASH_FEATURES: tuple[str, ...] = tuple(n for n in USER_FEATURES if n != LIST_FEATURE)


def ttl_seconds(name: str) -> int:
    ttl = FEATURES[name].ttl
    assert ttl is not None, f"real-time feature {name} has no TTL"
    return int(ttl / timedelta(seconds=1))


@dataclass(frozen=True, slots=True)
class FeatureSnapshot:
    user_id: str
    event_time_ms: int  # the member's latest event time the values reflect
    values: dict[str, Any]  # registry name -> typed value
