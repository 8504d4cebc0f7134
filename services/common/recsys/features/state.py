"""Per-member window state and the real-time features derived from it: pure logic, no Kafka.

One :class:`UserState` holds everything the job knows about a member: the event ids seen in
the dedup window, the open session, and compact window contents (watch time per genre entry,
recent searches, hourly abandon counts, daily play/complete counts, recently played titles).
``apply`` folds one event in and says whether it was applied, a duplicate or late;
``features`` computes every real-time user feature as of the member's latest event time, so the
values depend only on the events applied, never on the wall clock (replays give equal values).

    state = UserState()
    outcome = state.apply(event, catalog, grace_ms=300_000)
    values = state.features()  # {"session_duration_sec": 120, ...}

The state is encoded to compact JSON (``encode``/``decode``) for the changelog-backed table.
Precise definitions of each feature are in docs/features.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from recsys.events.v1 import events_pb2
from recsys.features import FEATURES
from recsys.features.titles import Catalog

__all__ = [
    "ABANDON_SHARE",
    "Applied",
    "Outcome",
    "SessionSummary",
    "UserState",
    "event_time_ms",
    "realtime_user_features",
]

_T = TypeVar("_T", bound=tuple[Any, ...])

# A play counts as abandoned when the member leaves it before this share of its runtime
# (the registry description of plays_abandoned_last_1hr: "before 25% of the runtime").
ABANDON_SHARE = 0.25


def _ms(name: str) -> int:
    window = FEATURES[name].window
    assert window is not None, name
    return int(window.total_seconds() * 1000)


GENRE_WINDOW_MS = _ms("current_genre_last_30min")
SESSION_GAP_MS = _ms("session_duration_sec")
HOUR_MS = _ms("plays_abandoned_last_1hr")
DAY_MS = _ms("content_completion_rate_today")
SEARCH_WINDOW_MS = _ms("search_terms_last_5min")
SEARCH_MAX = FEATURES["search_terms_last_5min"].max_items or 20
WATCHED_MAX = FEATURES["recently_watched_title_ids"].max_items or 200
OPEN_PLAY_MS = DAY_MS  # a play with no end within a day is forgotten

# Bounds on what one member's state holds, whatever the member sends: a state is one changelog
# record (Kafka refuses records over 1 MiB by default) and sits in memory. A person produces a few
# dozen events an hour; these caps only bite for bots and attackers, and each says what it costs.
SEEN_MAX = 1_000  # event ids kept for dedup: exact for a member's newest 1,000 events of the hour
WATCH_MAX = 500  # watch-time entries of the 30 min genre window (its newest 500)
OPEN_PLAYS_MAX = 100  # titles with an open play (the newest 100) for abandon detection
QUERY_MAX_CHARS = 200  # the ingest API's limit for a search query

_PLAY = events_pb2.EVENT_TYPE_PLAY
_PAUSE = events_pb2.EVENT_TYPE_PAUSE
_COMPLETE = events_pb2.EVENT_TYPE_COMPLETE
_SKIP = events_pb2.EVENT_TYPE_SKIP
_SEARCH = events_pb2.EVENT_TYPE_SEARCH

_DEVICES: dict[int, str] = {
    value: name.removeprefix("DEVICE_").lower()
    for name, value in events_pb2.Device.items()
    if value != events_pb2.DEVICE_UNSPECIFIED
}


def realtime_user_features() -> list[str]:
    """Names of the registry's real-time user features, in registry order."""
    from recsys.features import Entity, FeatureKind

    return [f.name for f in FEATURES.select(entity=Entity.USER, kind=FeatureKind.REALTIME)]


def event_time_ms(event: events_pb2.Event) -> int:
    ts = event.occurred_at
    return ts.seconds * 1000 + ts.nanos // 1_000_000


class Applied(enum.Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    LATE = "late"


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """A closed session: the member's next event came more than the gap after its last one."""

    user_id: str
    start_ms: int
    end_ms: int
    event_count: int

    @property
    def session_id(self) -> str:
        return f"{self.user_id}:{self.start_ms}"

    @property
    def duration_sec(self) -> int:
        return (self.end_ms - self.start_ms) // 1000

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "session_id": self.session_id,
                "user_id": self.user_id,
                "start_ms": self.start_ms,
                "end_ms": self.end_ms,
                "duration_sec": self.duration_sec,
                "event_count": self.event_count,
            }
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Applied
    closed_session: SessionSummary | None = None


@dataclass(slots=True)
class UserState:
    """Everything kept per member; times are event-time epoch milliseconds."""

    watermark_ms: int = 0  # latest event time applied; 0 before the first event
    seen: dict[str, int] = field(default_factory=dict)  # event_id -> event time
    session_start_ms: int = 0
    session_last_ms: int = 0
    session_events: int = 0
    session_emitted: bool = False  # the open session's summary went out (idle close)
    device: str = ""
    device_ms: int = 0
    country: str = ""
    # Entries are tuples of plain values, never lists: the garbage collector stops tracking
    # such tuples, so tens of thousands of cached states do not make every full collection
    # walk millions of small containers (it did: up to 0.7 s per collection).
    # (time, genre, watched_sec): plays (0 s) and watch-time reports of titles with a genre
    watch: list[tuple[int, str, float]] = field(default_factory=list)
    searches: list[tuple[int, str]] = field(default_factory=list)  # (time, query)
    abandons: dict[int, int] = field(default_factory=dict)  # UTC hour index -> count
    # UTC day index -> (plays, completes)
    days: dict[int, tuple[int, int]] = field(default_factory=dict)
    open_plays: dict[str, int] = field(default_factory=dict)  # title -> time of its latest play
    watched: list[tuple[int, str]] = field(default_factory=list)  # (time, title), newest first

    # --- folding events in -------------------------------------------------------------------

    def apply(
        self,
        event: events_pb2.Event,
        catalog: Catalog,
        *,
        grace_ms: int,
        dedup_ms: int = HOUR_MS,
    ) -> Outcome:
        """Fold one event in. Window contents are only garbage-collected by :meth:`prune`;
        every check here bounds its window itself, so when ``prune`` runs (per event, per
        batch) never changes a result."""
        t = event_time_ms(event)
        previous_wm = self.watermark_ms
        seen_at = self.seen.get(event.event_id)
        if seen_at is not None and seen_at >= previous_wm - dedup_ms:
            return Outcome(Applied.DUPLICATE)
        if self.session_events and t < previous_wm - grace_ms:
            return Outcome(Applied.LATE)
        self.seen[event.event_id] = t
        closed = self._sessionize(event.user_id, t)
        self.watermark_ms = max(previous_wm, t)
        if t >= self.device_ms:
            self.device_ms = t
            self.device = _DEVICES.get(event.device, self.device)
            self.country = event.country or self.country
        self._fold(event, t, catalog, open_after=previous_wm - OPEN_PLAY_MS)
        return Outcome(Applied.APPLIED, closed)

    def _sessionize(self, user_id: str, t: int) -> SessionSummary | None:
        if self.session_events == 0:
            self.session_start_ms = self.session_last_ms = t
            self.session_events = 1
            return None
        if t - self.session_last_ms > SESSION_GAP_MS:
            closed = None if self.session_emitted else self._summary(user_id)
            self.session_start_ms = self.session_last_ms = t
            self.session_events = 1
            self.session_emitted = False
            return closed
        # Inside the gap of the open session (grace < gap, so a non-late event always is).
        self.session_start_ms = min(self.session_start_ms, t)
        self.session_last_ms = max(self.session_last_ms, t)
        self.session_events += 1
        # An idle-closed session that grows is summarised again when it closes (same id).
        self.session_emitted = False
        return None

    def _summary(self, user_id: str) -> SessionSummary:
        return SessionSummary(
            user_id, self.session_start_ms, self.session_last_ms, self.session_events
        )

    def close_idle(self, user_id: str) -> SessionSummary | None:
        """Summarise the open session without waiting for the member's next event (the
        caller knows event time has moved past its gap); None if already summarised."""
        if not self.session_events or self.session_emitted:
            return None
        self.session_emitted = True
        return self._summary(user_id)

    @property
    def idle_candidate_ms(self) -> int | None:
        """The last event time of an open session not yet summarised, else None."""
        return self.session_last_ms if self.session_events and not self.session_emitted else None

    def _fold(self, event: events_pb2.Event, t: int, catalog: Catalog, *, open_after: int) -> None:
        kind = event.event_type
        title = event.title_id
        info = catalog.lookup(title) if title else None
        genre = info.primary_genre if info is not None else None
        if kind == _PLAY:
            self._count_day(t, plays=1)
            if title:
                self.open_plays[title] = max(self.open_plays.get(title, t), t)
                self._watched(title, t)
            if genre:
                self.watch.append((t, genre, 0.0))
        elif kind == _COMPLETE:
            self._count_day(t, completes=1)
            self.open_plays.pop(title, None)
            if genre:
                self.watch.append((t, genre, max(event.complete.watched_sec, 0.0)))
        elif kind == _PAUSE:
            if genre:
                self.watch.append((t, genre, max(event.pause.watched_sec, 0.0)))
        elif kind == _SKIP:
            if genre:
                self.watch.append((t, genre, max(event.skip.watched_sec, 0.0)))
            started = self.open_plays.get(title)
            if started is not None and open_after < started <= t:
                del self.open_plays[title]
                runtime = info.runtime_sec if info is not None else None
                if runtime and event.skip.position_sec < ABANDON_SHARE * runtime:
                    hour = t // HOUR_MS
                    self.abandons[hour] = self.abandons.get(hour, 0) + 1
        elif kind == _SEARCH:
            query = event.search.query.strip()[:QUERY_MAX_CHARS]
            if query:
                self.searches.append((t, query))

    def _count_day(self, t: int, *, plays: int = 0, completes: int = 0) -> None:
        day = t // DAY_MS
        played, completed = self.days.get(day, (0, 0))
        self.days[day] = (played + plays, completed + completes)

    def _watched(self, title: str, t: int) -> None:
        for i, (when, existing) in enumerate(self.watched):
            if existing == title:
                if when >= t:
                    return
                del self.watched[i]
                break
        position = 0
        while position < len(self.watched) and self.watched[position][0] >= t:
            position += 1
        if position < WATCHED_MAX:
            self.watched.insert(position, (t, title))
            del self.watched[WATCHED_MAX:]

    def prune(self, *, grace_ms: int, dedup_ms: int = HOUR_MS) -> None:
        """Drop what no window can use any more, and hold every list to its cap (before
        encoding, not per event)."""
        wm = self.watermark_ms
        if self.seen and (len(self.seen) > SEEN_MAX or min(self.seen.values()) < wm - dedup_ms):
            kept = [(k, v) for k, v in self.seen.items() if v >= wm - dedup_ms]
            if len(kept) > SEEN_MAX:
                kept = sorted(kept, key=lambda kv: kv[1])[-SEEN_MAX:]
            self.seen = dict(kept)
        # Containers are rebuilt only when something is in them: most members hold a few
        # entries, and a new member's prune runs once per event it sends.
        if self.watch:
            self.watch = _newest([w for w in self.watch if w[0] > wm - GENRE_WINDOW_MS], WATCH_MAX)
        if self.searches:
            self.searches = _distinct_newest(
                [s for s in self.searches if s[0] > wm - SEARCH_WINDOW_MS], SEARCH_MAX
            )
        if self.abandons:
            oldest_hour = (wm - grace_ms) // HOUR_MS
            self.abandons = {h: n for h, n in self.abandons.items() if h >= oldest_hour}
        if self.days:
            oldest_day = (wm - grace_ms) // DAY_MS
            self.days = {d: c for d, c in self.days.items() if d >= oldest_day}
        if self.open_plays:
            open_plays = [(v, k) for k, v in self.open_plays.items() if v > wm - OPEN_PLAY_MS]
            self.open_plays = {k: v for v, k in _newest(open_plays, OPEN_PLAYS_MAX)}

    def heal(self, limit_ms: int) -> bool:
        """Forget what happened after ``limit_ms`` (the wall clock plus the allowed skew).

        Workers before the skew bound applied events from far in the future; their time became
        the member's watermark, which made the member's real events late. Entries after the
        limit are dropped and the watermark falls back to the newest entry left (the session
        keeps its part before the limit). Returns whether anything changed.
        """
        if self.watermark_ms <= limit_ms:
            return False
        self.seen = {k: v for k, v in self.seen.items() if v <= limit_ms}
        self.watch = [w for w in self.watch if w[0] <= limit_ms]
        self.searches = [s for s in self.searches if s[0] <= limit_ms]
        self.abandons = {h: n for h, n in self.abandons.items() if h * HOUR_MS <= limit_ms}
        self.days = {d: c for d, c in self.days.items() if d * DAY_MS <= limit_ms}
        self.open_plays = {k: v for k, v in self.open_plays.items() if v <= limit_ms}
        self.watched = [w for w in self.watched if w[0] <= limit_ms]
        if self.device_ms > limit_ms:
            self.device_ms = 0  # the device stays until a real event reports one
        if self.session_start_ms > limit_ms:
            self.session_start_ms = self.session_last_ms = self.session_events = 0
            self.session_emitted = False
        elif self.session_last_ms > limit_ms:
            inside = [v for v in self.seen.values() if self.session_start_ms <= v]
            self.session_last_ms = max(inside, default=self.session_start_ms)
        times = [
            *self.seen.values(),
            self.session_last_ms,
            self.device_ms,
            *(w[0] for w in self.watch),
            *(s[0] for s in self.searches),
            *self.open_plays.values(),
            *(w[0] for w in self.watched),
        ]
        self.watermark_ms = max(times, default=0)
        return True

    # --- reading features ----------------------------------------------------------------

    def features(self) -> dict[str, Any]:
        """Every real-time user feature as of the latest event time (registry names)."""
        asof = self.watermark_ms
        plays, completes = self.days.get(asof // DAY_MS, (0, 0))
        return {
            "current_genre_last_30min": self._current_genre(asof),
            "session_duration_sec": (self.session_last_ms - self.session_start_ms) // 1000,
            "plays_abandoned_last_1hr": self.abandons.get(asof // HOUR_MS, 0),
            "content_completion_rate_today": min(1.0, completes / plays) if plays else 0.0,
            "current_device_type": self.device,
            "search_terms_last_5min": self._recent_searches(asof),
            "recently_watched_title_ids": [title for _, title in self.watched],
        }

    def _current_genre(self, asof: int) -> str:
        totals: dict[str, float] = {}
        latest: dict[str, int] = {}
        for t, genre, seconds in self.watch:
            if asof - GENRE_WINDOW_MS < t <= asof:
                totals[genre] = totals.get(genre, 0.0) + seconds
                latest[genre] = max(latest.get(genre, t), t)
        if not totals:
            return ""
        # Most watch time; ties (including "only plays so far", all 0 s) go to the most recent.
        return max(totals, key=lambda g: (totals[g], latest[g], g))

    def _recent_searches(self, asof: int) -> list[str]:
        out: list[str] = []
        for _, query in sorted(
            (s for s in self.searches if asof - SEARCH_WINDOW_MS < s[0] <= asof),
            key=lambda s: s[0],
            reverse=True,
        ):
            if query not in out:
                out.append(query)
                if len(out) == SEARCH_MAX:
                    break
        return out

    # --- encoding ------------------------------------------------------------------------

    def encode(self) -> bytes:
        encoded = orjson.dumps(
            {
                "wm": self.watermark_ms,
                "seen": self.seen,
                "ss": [
                    self.session_start_ms,
                    self.session_last_ms,
                    self.session_events,
                    self.session_emitted,
                ],
                "dev": [self.device, self.device_ms, self.country],
                "watch": self.watch,
                "search": self.searches,
                "ab": {str(k): v for k, v in self.abandons.items()},
                "days": {str(k): v for k, v in self.days.items()},
                "open": self.open_plays,
                "watched": self.watched,
            }
        )
        # orjson hands back every output in a buffer of at least 4 KiB; a state (a few hundred
        # bytes) kept in the table for each member would hold all of it. One exact-size copy.
        return bytes(memoryview(encoded))

    @classmethod
    def decode(cls, raw: bytes) -> UserState:
        d = orjson.loads(raw)
        start, last, count, *emitted = d["ss"]  # states written before v2 have 3 items
        device, device_ms, country = d["dev"]
        return cls(
            watermark_ms=d["wm"],
            seen=d["seen"],
            session_start_ms=start,
            session_last_ms=last,
            session_events=count,
            session_emitted=bool(emitted and emitted[0]),
            device=device,
            device_ms=device_ms,
            country=country,
            watch=[(t, genre, seconds) for t, genre, seconds in d["watch"]],
            searches=[(t, query) for t, query in d["search"]],
            abandons={int(k): v for k, v in d["ab"].items()},
            days={int(k): (plays, completes) for k, (plays, completes) in d["days"].items()},
            open_plays=d["open"],
            watched=[(t, title) for t, title in d["watched"]],
        )


def _newest(entries: list[_T], cap: int) -> list[_T]:
    """The newest ``cap`` of ``entries`` (tuples that start with their time) in their original
    order; among equal times the earlier entries stay. A fixed order, so capping per event or
    once per batch keeps the same entries."""
    if len(entries) <= cap:
        return entries
    cutoff = sorted(e[0] for e in entries)[-cap]
    ties = cap - sum(1 for e in entries if e[0] > cutoff)
    kept: list[_T] = []
    for entry in entries:
        if entry[0] > cutoff:
            kept.append(entry)
        elif entry[0] == cutoff and ties > 0:
            kept.append(entry)
            ties -= 1
    return kept


def _distinct_newest(searches: list[tuple[int, str]], cap: int) -> list[tuple[int, str]]:
    """Each query once, at its newest time, the newest ``cap`` of them, oldest first. Exact for
    the feature: a query with ``cap`` newer distinct queries is never served again (it leaves the
    window before any of them)."""
    if not searches:
        return searches
    newest: dict[str, int] = {}
    for t, query in searches:
        if t > newest.get(query, -1):
            newest[query] = t
    ranked = sorted(newest.items(), key=lambda qt: (-qt[1], qt[0]))[:cap]
    return sorted((t, query) for query, t in ranked)
