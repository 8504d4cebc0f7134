"""What the stream job writes per member: feature values as of an event time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The layout is shared with the feature store's readers (recsys.features.online).
from recsys.features.online import HASH_FEATURES, LIST_FEATURE, USER_FEATURES, ttl_seconds

__all__ = [
    "HASH_FEATURES",
    "LIST_FEATURE",
    "USER_FEATURES",
    "FeatureSnapshot",
    "ttl_seconds",
]


@dataclass(frozen=True, slots=True)
class FeatureSnapshot:
    user_id: str
    event_time_ms: int  # the member's latest event time the values reflect
    values: dict[str, Any]  # registry name -> typed value
