"""The degradation ladder: the level a request is served at and why.

    trace = Degradation()
    trace.step(Reason.RANKER_UNAVAILABLE, "DEADLINE_EXCEEDED")   # level 1 from now on
    trace.level, trace.reasons

The level only goes down the ladder (a higher number): it is the worst of the reasons met. Each
reason is a stable code (in the response, the served log and the metrics) with the level it
implies; its detail (what failed, how) is free text for people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from recsys.common.v1 import common_pb2

__all__ = ["LEVEL_PROTO", "Degradation", "Level", "Reason"]


class Level(IntEnum):
    FULL = 0  # real-time + batch features, the member's variant, the full ranker
    DEGRADED = 1  # personalised, but something is missing: a feature tier, the variant, the ranker
    FALLBACK = 2  # the country's (and genre's) popular titles, precomputed
    EMERGENCY = 3  # the member's last list, else the global list this process holds


LEVEL_PROTO = {
    Level.FULL: common_pb2.DEGRADATION_LEVEL_FULL,
    Level.DEGRADED: common_pb2.DEGRADATION_LEVEL_DEGRADED,
    Level.FALLBACK: common_pb2.DEGRADATION_LEVEL_FALLBACK,
    Level.EMERGENCY: common_pb2.DEGRADATION_LEVEL_EMERGENCY,
}


class Reason(StrEnum):
    EXPERIMENTS_UNAVAILABLE = "experiments_unavailable"
    REALTIME_FEATURES_UNAVAILABLE = "realtime_features_unavailable"
    BATCH_FEATURES_UNAVAILABLE = "batch_features_unavailable"
    RANKER_UNAVAILABLE = "ranker_unavailable"
    FEATURES_UNAVAILABLE = "features_unavailable"
    CANDIDATES_UNAVAILABLE = "candidates_unavailable"
    NO_CANDIDATES = "no_candidates"
    OVERLOADED = "overloaded"
    FALLBACK_UNAVAILABLE = "fallback_unavailable"
    INTERNAL_ERROR = "internal_error"

    @property
    def level(self) -> Level:
        return _LEVELS[self]


_LEVELS = {
    Reason.EXPERIMENTS_UNAVAILABLE: Level.DEGRADED,
    Reason.REALTIME_FEATURES_UNAVAILABLE: Level.DEGRADED,
    Reason.BATCH_FEATURES_UNAVAILABLE: Level.DEGRADED,
    Reason.RANKER_UNAVAILABLE: Level.DEGRADED,
    Reason.FEATURES_UNAVAILABLE: Level.FALLBACK,
    Reason.CANDIDATES_UNAVAILABLE: Level.FALLBACK,
    Reason.NO_CANDIDATES: Level.FALLBACK,
    Reason.OVERLOADED: Level.FALLBACK,
    Reason.FALLBACK_UNAVAILABLE: Level.EMERGENCY,
    Reason.INTERNAL_ERROR: Level.EMERGENCY,
}


@dataclass(frozen=True, slots=True)
class Step:
    reason: Reason
    detail: str


@dataclass(slots=True)
class Degradation:
    """The steps down the ladder one request took, in the order they happened."""

    steps: list[Step] = field(default_factory=list)
    level: Level = Level.FULL

    def step(self, reason: Reason, detail: str) -> None:
        self.steps.append(Step(reason, detail))
        self.level = max(self.level, reason.level)
