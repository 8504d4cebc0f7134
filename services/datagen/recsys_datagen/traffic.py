"""The stream of events a population of members produces, handed out a tick at a time.

    model = TrafficModel(world, rng, time_scale=60.0)
    model.warm_start(now_ms, rate=500)
    batch = model.take(now_ms, 50)  # exactly 50 events

No I/O and no clock of its own: the caller passes the time, so tests drive it with a fake clock.
Sessions (:func:`recsys_datagen.behaviour.plan_session`) are started on demand: each call first
hands out the events that are due (``occurred_at <= now``) from sessions already in flight and
starts new sessions, at ``now``, only when those do not cover the request. The caller's pacer
therefore sets the rate exactly, and the session start rate settles where it sustains it.

Besides these normal events, a configurable share of each take is:

- duplicates: an event already handed out, resent unchanged (same event_id), as a client that
  retries after a lost response does;
- late: events of a session that started minutes ago on a device that was offline and now
  flushes its queue, so their occurred_at is minutes old and out of order;
- malformed: a copy of a normal event with a new event_id and one defect (a missing field, a
  rating of 0 or 6, an unknown device, ...), which the ingest must reject.
"""

from __future__ import annotations

import copy
import heapq
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys_datagen.behaviour import BehaviourParams, PlannedEvent, plan_session, random_uuid
from recsys_datagen.sim_world import SimWorld

__all__ = ["DEFECTS", "TrafficModel", "TrafficShares", "corrupt"]

Event = dict[str, Any]

_HOUR_MS = 3_600_000
_DEFAULT_PARAMS = BehaviourParams()
_WARM_SAMPLE = 300  # sessions sampled to estimate events per session and session length


@dataclass(frozen=True, slots=True)
class TrafficShares:
    duplicate: float = 0.01
    late: float = 0.02
    malformed: float = 0.005
    late_minutes: tuple[float, float] = (2.0, 15.0)  # how long the late device was offline

    def __post_init__(self) -> None:
        for name in ("duplicate", "late", "malformed"):
            if not 0.0 <= getattr(self, name) <= 0.5:
                raise ValueError(f"{name} share must be between 0 and 0.5")
        if self.duplicate + self.late + self.malformed > 0.9:
            raise ValueError("duplicate + late + malformed shares leave too few normal events")


class TrafficModel:
    def __init__(
        self,
        world: SimWorld,
        rng: np.random.Generator,
        *,
        shares: TrafficShares = TrafficShares(),
        params: BehaviourParams = _DEFAULT_PARAMS,
        time_scale: float = 1.0,
        recent: int = 10_000,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.world, self.rng, self.shares, self.params = world, rng, shares, params
        self.time_scale = time_scale
        self.counts: Counter[str] = Counter()  # normal, duplicate, late, malformed, sessions
        self.defects: Counter[str] = Counter()
        self._pending: list[tuple[int, int, Event]] = []  # heap of (at_ms, seq, event)
        self._seq = 0
        self._late: deque[Event] = deque()
        self._recent: deque[Event] = deque(maxlen=recent)
        self._busy_until = np.zeros(world.member_count, dtype=np.int64)
        self._owed = {"duplicate": 0.0, "late": 0.0, "malformed": 0.0}

    @property
    def in_flight(self) -> int:
        """Events planned for the future by sessions already started."""
        return len(self._pending)

    def warm_start(
        self, now_ms: int, rate: float, *, fill: float = 0.8, max_sessions: int = 5_000
    ) -> int:
        """Start sessions in the recent past, as if the simulation had been running, so the mix
        of event types is steady from the first second (completions included).

        About ``fill`` of the steady-state number of sessions is started over the last session
        horizon (a shortfall is made up on demand; an excess would make events queue up). The
        cost grows with rate x horizon, so it stops at ``max_sessions`` (about 1 ms each).
        Returns the number started.
        """
        sample = [
            plan_session(
                self.world,
                self._pick_member(now_ms),
                0,
                self.rng,
                self.params,
                time_scale=self.time_scale,
            )
            for _ in range(_WARM_SAMPLE)
        ]
        per_session = float(np.mean([len(s) for s in sample]))
        horizon_ms = int(np.percentile([s[-1].at_ms for s in sample], 95)) + 1
        sessions = min(int(fill * rate / per_session * horizon_ms / 1000.0), max_sessions)
        for _ in range(sessions):
            start = now_ms - int(self.rng.integers(0, horizon_ms))
            member = self._pick_member(start)
            for planned in self._plan(member, start):
                if planned.at_ms >= now_ms:
                    self._push(planned)
        return sessions

    def take(self, now_ms: int, count: int) -> list[Event]:
        """Exactly ``count`` events for this moment: normal ones due by ``now_ms`` plus the
        configured shares of duplicates, late and malformed events, mixed in at random places
        (the normal events keep their time order)."""
        return [event for _, event in self.take_tagged(now_ms, count)]

    def take_tagged(self, now_ms: int, count: int) -> list[tuple[str, Event]]:
        """:meth:`take`, each event with its kind: normal, late, duplicate or malformed."""
        if count <= 0:
            return []
        extra: dict[str, int] = {}
        room = count
        for kind in ("malformed", "late", "duplicate"):
            extra[kind] = self._due_share(kind, count, room)
            room -= extra[kind]
        if not self._recent and extra["duplicate"]:  # nothing sent yet to duplicate: owe it
            self._owed["duplicate"] += extra["duplicate"]
            extra["duplicate"] = 0
        normal_count = count - sum(extra.values())
        # Duplicates repeat events handed out by earlier takes, as a retrying client would.
        duplicates = [
            self._recent[int(self.rng.integers(0, len(self._recent)))]
            for _ in range(extra["duplicate"])
        ]
        normal = self._normal(now_ms, normal_count)
        late = self._late_events(now_ms, extra["late"])
        self._recent.extend(normal)
        self._recent.extend(late)
        malformed = [self._malformed(now_ms, normal) for _ in range(extra["malformed"])]
        self.counts.update(
            normal=len(normal), late=len(late), duplicate=len(duplicates), malformed=len(malformed)
        )
        return self._interleave(
            [("normal", e) for e in normal],
            [
                *(("late", e) for e in late),
                *(("duplicate", e) for e in duplicates),
                *(("malformed", e) for e in malformed),
            ],
        )

    # --- normal events ----------------------------------------------------------------------

    def _normal(self, now_ms: int, count: int) -> list[Event]:
        out: list[Event] = []
        while len(out) < count:
            if self._pending and self._pending[0][0] <= now_ms:
                out.append(heapq.heappop(self._pending)[2])
                continue
            # Nothing due: a member opens a session now (its first event is due at once).
            for planned in self._plan(self._pick_member(now_ms), now_ms):
                self._push(planned)
        return out

    def _plan(self, member: int, start_ms: int) -> list[PlannedEvent]:
        planned = plan_session(
            self.world, member, start_ms, self.rng, self.params, time_scale=self.time_scale
        )
        self._busy_until[member] = max(self._busy_until[member], planned[-1].at_ms)
        self.counts["sessions"] += 1
        return planned

    def _push(self, planned: PlannedEvent) -> None:
        self._seq += 1
        heapq.heappush(self._pending, (planned.at_ms, self._seq, planned.event))

    def _pick_member(self, at_ms: int) -> int:
        """A member in proportion to activity and time of day, preferring one not already in a
        session (a handful of tries: with a small world at a high rate, sessions overlap)."""
        cdf = self.world.member_cdf(int(at_ms // _HOUR_MS) % 24)
        member = 0
        for _ in range(5):
            member = int(np.searchsorted(cdf, self.rng.random() * cdf[-1], "right"))
            member = min(member, self.world.member_count - 1)
            if self._busy_until[member] <= at_ms:
                break
        return member

    # --- late, duplicate and malformed events ----------------------------------------------

    def _due_share(self, kind: str, count: int, room: int) -> int:
        # Carry the fractions over so shares are exact over a run, not just on average.
        self._owed[kind] += count * float(getattr(self.shares, kind))
        due = min(int(self._owed[kind]), room)
        self._owed[kind] -= due
        return due

    def _late_events(self, now_ms: int, count: int) -> list[Event]:
        low, high = self.shares.late_minutes
        while len(self._late) < count:
            start = now_ms - int(self.rng.uniform(low, high) * 60_000)
            member = self._pick_member(start)
            for planned in self._plan(member, start):
                if planned.at_ms <= now_ms:
                    self._late.append(planned.event)  # queued on the device, sent together
                else:
                    self._push(planned)  # back online: the rest of the session is live
        return [self._late.popleft() for _ in range(count)]

    def _malformed(self, now_ms: int, normal: list[Event]) -> Event:
        source = normal[int(self.rng.integers(0, len(normal)))] if normal else None
        if source is None:
            (planned, *_) = plan_session(
                self.world,
                self._pick_member(now_ms),
                now_ms,
                self.rng,
                self.params,
                time_scale=self.time_scale,
            )
            source = planned.event
        bad, defect = corrupt(source, self.rng, now_ms)
        self.defects[defect] += 1
        return bad

    def _interleave(
        self, ordered: list[tuple[str, Event]], extra: list[tuple[str, Event]]
    ) -> list[tuple[str, Event]]:
        if not extra:
            return ordered
        out = list(ordered)
        for event in extra:
            out.insert(int(self.rng.integers(0, len(out) + 1)), event)
        return out


def _drop(field: str) -> Any:
    def apply(event: Event, rng: np.random.Generator, now_ms: int) -> None:
        event.pop(field, None)

    return apply


def _set(field: str, *values: Any) -> Any:
    def apply(event: Event, rng: np.random.Generator, now_ms: int) -> None:
        event[field] = values[int(rng.integers(0, len(values)))]

    return apply


def _bad_rating(event: Event, rng: np.random.Generator, now_ms: int) -> None:
    event["event_type"] = "rate"
    event.setdefault("title_id", "t000000")
    for key in (
        "title_ids",
        "row",
        "position",
        "request_id",
        "query",
        "page",
        "position_sec",
        "watched_sec",
    ):
        event.pop(key, None)
    event["rating"] = [0, 6, 10, -1][int(rng.integers(0, 4))]


def _future(event: Event, rng: np.random.Generator, now_ms: int) -> None:
    event["occurred_at"] = now_ms + 3 * 24 * _HOUR_MS  # beyond the ingest's now + 24 h


# Each defect makes an otherwise valid event break exactly one rule of the event contract.
DEFECTS: dict[str, Any] = {
    "missing_user_id": _drop("user_id"),
    "missing_event_type": _drop("event_type"),
    "missing_occurred_at": _drop("occurred_at"),
    "bad_rating": _bad_rating,
    "unknown_device": _set("device", "toaster", "smartwatch"),
    "bad_country": _set("country", "usa", "XX", "u$"),
    "unknown_event_type": _set("event_type", "purchase", "like"),
    "bad_user_id": _set("user_id", "not a valid id!", "", "x" * 80),
    "future_occurred_at": _future,
    "bad_occurred_at": _set("occurred_at", "yesterday", "2013-13-45T25:00:00Z"),
}


def corrupt(event: Event, rng: np.random.Generator, now_ms: int) -> tuple[Event, str]:
    """A copy of ``event`` with a fresh event_id and one defect from :data:`DEFECTS`."""
    bad = copy.deepcopy(event)
    bad["event_id"] = random_uuid(rng)
    name = list(DEFECTS)[int(rng.integers(0, len(DEFECTS)))]
    DEFECTS[name](bad, rng, now_ms)
    return bad, name
