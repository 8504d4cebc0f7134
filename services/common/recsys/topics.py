"""Every Kafka topic of the platform, declared once.

``recsys infra topics`` creates them (and brings partitions and configs in line); services import
the names from here. All event types share one topic keyed by user_id: the stream job needs one
member's views, plays, searches and skips in their true order to sessionize and to compute
features like "plays abandoned", and a per-family split would lose that order across topics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

__all__ = [
    "DEAD_LETTERS",
    "EVENTS",
    "EXPOSURES",
    "LATE_EVENTS",
    "SERVED_RECOMMENDATIONS",
    "SESSIONS",
    "TOPICS",
    "TopicSpec",
]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    retention: timedelta | None  # None: keep forever (compacted topics)
    cleanup_policy: Literal["delete", "compact"]
    description: str
    key: str
    value: str
    extra_configs: dict[str, str] = field(default_factory=dict)

    def configs(self) -> dict[str, str]:
        """The topic-level configs the broker should hold for this topic."""
        retention_ms = -1 if self.retention is None else int(self.retention.total_seconds() * 1000)
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(retention_ms),
            **self.extra_configs,
        }


# Six partitions: enough for several stream workers on a laptop, cheap for one.
EVENTS = TopicSpec(
    name="recsys.events.v1",
    partitions=6,
    retention=timedelta(days=7),
    cleanup_policy="delete",
    description="Every accepted member event (all types), in per-member order.",
    key="user_id (UTF-8)",
    value="recsys.events.v1.Event (protobuf)",
)
LATE_EVENTS = TopicSpec(
    name="recsys.events.late.v1",
    partitions=6,
    retention=timedelta(days=7),
    cleanup_policy="delete",
    description="Events that arrived after their window's grace period; left to the batch path.",
    key="user_id (UTF-8)",
    value="recsys.events.v1.Event (protobuf)",
)
DEAD_LETTERS = TopicSpec(
    name="recsys.events.dlq.v1",
    partitions=6,
    retention=timedelta(days=30),
    cleanup_policy="delete",
    description="Records the feature job cannot process (undecodable, bad ids, event time beyond "
    "the clock-skew bound, a fold that raised), unchanged, with the reason in the `reason` header "
    "and their origin in `source.topic`, `source.partition` and `source.offset`.",
    key="the original key",
    value="the original bytes",
)
SESSIONS = TopicSpec(
    name="recsys.sessions.v1",
    partitions=6,
    retention=timedelta(days=7),
    cleanup_policy="delete",
    description="Closed viewing sessions (30 min inactivity gap) with their summaries.",
    key="user_id (UTF-8)",
    value="session summary",
)
SERVED_RECOMMENDATIONS = TopicSpec(
    name="recsys.recommendations.served.v1",
    partitions=6,
    retention=timedelta(days=7),
    cleanup_policy="delete",
    description="Every list the API served (items, variant, model, level), for A/B metrics.",
    key="user_id (UTF-8)",
    value="recsys.recommendations.v1.ServedRecommendations (protobuf)",
)

EXPOSURES = TopicSpec(
    name="recsys.experiments.exposures.v1",
    partitions=6,
    retention=timedelta(days=30),
    cleanup_policy="delete",
    description="Every experiment assignment the experiments service served (one record per "
    "member and experiment per call), for A/B metrics.",
    key="user_id (UTF-8)",
    value="recsys.experiments.v1.ExposureEvent (protobuf)",
)

TOPICS: tuple[TopicSpec, ...] = (
    EVENTS,
    LATE_EVENTS,
    DEAD_LETTERS,
    SESSIONS,
    SERVED_RECOMMENDATIONS,
    EXPOSURES,
)
