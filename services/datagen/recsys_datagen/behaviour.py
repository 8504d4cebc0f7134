"""How a member behaves in one session: pure functions of the world, a member and a seeded RNG.

    events = plan_session(world, member=7, start_ms=now_ms, rng=rng)

A session opens on the home page (rows of impressions), browses (views, sometimes a search),
plays some titles and either completes them (with pauses, maybe a rating, maybe the next episode
of a series) or abandons them: early, a skip with small ``watched_sec``, or midway, a pause after
which the member leaves. Choices follow the member's taste (genre preferences x title genres) and
the titles' Zipf-like popularity, restricted to what is available in the member's country. The
model is described, with its parameters, in docs/data.md.

Times: offsets are in member seconds (a 100-minute film takes 6000 s to complete) and are divided
by ``time_scale`` to get wall-clock offsets, so a simulation can run member time faster than the
clock; ``position_sec`` and ``watched_sec`` always count content seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from recsys.catalog import GENRES
from recsys_datagen.sim_world import SimWorld

__all__ = [
    "BehaviourParams",
    "PlannedEvent",
    "choose_titles",
    "format_uuid4",
    "plan_session",
    "random_uuid",
    "taste",
    "title_weights",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

ROWS = (
    "continue_watching",
    "trending_now",
    "new_releases",
    "because_you_watched",
    "popular_in_your_country",
    "critically_acclaimed",
)
APP_VERSIONS = {
    "tv": ("tv-6.4.0", "tv-6.5.1"),
    "mobile": ("ios-15.2.1", "android-15.2.0"),
    "tablet": ("ipados-15.2.1", "android-15.2.0"),
    "web": ("web-2026.11.1", "web-2026.11.2"),
    "console": ("console-3.8.0",),
}


@dataclass(frozen=True, slots=True)
class BehaviourParams:
    popularity_exponent: float = 0.8  # weight ~ popularity^a: how much the head dominates
    taste_exponent: float = 1.5  # weight ~ taste^b: how much genre fit matters
    candidate_pool: int = 400  # titles drawn by popularity before taste reweighting
    extra_rows_mean: float = 2.0  # home-page rows after the first (Poisson)
    titles_per_row: tuple[int, int] = (8, 24)
    search_share: float = 0.15  # a browse step that is a search
    max_steps: int = 6  # browse steps per session at most
    continue_after_browse: float = 0.6
    continue_after_watch: float = 0.35
    next_episode: float = 0.5  # after completing an episode of a series
    preview_skip: float = 0.3  # a viewed title not played is skipped as a preview
    rate_share: float = 0.35  # a completed title gets rated
    pauses_mean: float = 0.6  # pauses during a completed watch (Poisson)
    early_abandon_share: float = 0.6  # of abandoned plays: stopped in the first minutes
    think_time_s: float = 8.0  # mean seconds between browse actions
    pause_length_s: float = 90.0  # mean seconds a pause lasts


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    at_ms: int  # wall-clock time at which the event happens (its occurred_at)
    event: dict[str, Any]  # the JSON event, occurred_at included


def taste(world: SimWorld, member: int) -> Floats:
    """How well each title fits the member's genre preferences; 1.0 is an average fit.

    The dot product of the member's preference vector with the title's genre mix, scaled by the
    number of genres so a member with uniform tastes scores every title 1.0.
    """
    fit: Floats = world.genre_matrix @ world.member_tastes[member]
    return fit * len(GENRES)


def title_weights(
    world: SimWorld, member: int, params: BehaviourParams = BehaviourParams()
) -> Floats:
    """Unnormalised choice weight of every title for the member: popularity x taste, available
    titles only (0 for titles not licensed in the member's country)."""
    country = world.member_country[member]
    weights: Floats = (
        world.popularity**params.popularity_exponent
        * taste(world, member) ** params.taste_exponent
        * world.available[:, country]
    )
    return weights


def choose_titles(
    world: SimWorld,
    member: int,
    count: int,
    rng: np.random.Generator,
    params: BehaviourParams = BehaviourParams(),
    *,
    genre: int | None = None,
) -> Ints:
    """Up to ``count`` distinct available titles, drawn in proportion to :func:`title_weights`.

    Sampling-importance-resampling keeps this cheap for large catalogs: a pool is drawn with
    replacement by popularity alone (a binary search on a cumulative array per country), then
    each distinct title is weighted by the member's taste times the number of times it was drawn
    and ``count`` are picked without replacement (Gumbel top-k). ``genre`` restricts the choice
    to titles of that genre (search results).
    """
    cdf = world.popularity_cdf(int(world.member_country[member]), params.popularity_exponent)
    if cdf[-1] <= 0:
        return np.empty(0, dtype=np.int64)
    draws = np.searchsorted(cdf, rng.random(params.candidate_pool) * cdf[-1], "right")
    pool, drawn = np.unique(np.minimum(draws, world.title_count - 1), return_counts=True)
    fit = (world.genre_matrix[pool] @ world.member_tastes[member]) * len(GENRES)
    # Resampling weight: taste (the importance weight) x how often popularity drew the title.
    weights = fit**params.taste_exponent * drawn
    if genre is not None:
        weights = weights * (world.genre_matrix[pool, genre] > 0)
    keep = weights > 0
    pool, weights = pool[keep], weights[keep]
    if len(pool) == 0:
        return np.empty(0, dtype=np.int64)
    keys = np.log(weights) + rng.gumbel(size=len(pool))
    top = np.argsort(-keys)[:count]
    chosen: Ints = pool[top]
    return chosen


def plan_session(
    world: SimWorld,
    member: int,
    start_ms: int,
    rng: np.random.Generator,
    params: BehaviourParams = BehaviourParams(),
    *,
    time_scale: float = 1.0,
) -> list[PlannedEvent]:
    """Every event of one session, in time order; the first is an impression at ``start_ms``."""
    return _Session(world, member, start_ms, rng, params, time_scale).run()


class _Session:
    """The state of one session while it is planned: a clock in member seconds and the events."""

    def __init__(
        self,
        world: SimWorld,
        member: int,
        start_ms: int,
        rng: np.random.Generator,
        params: BehaviourParams,
        time_scale: float,
    ) -> None:
        self.world, self.member, self.rng, self.p = world, member, rng, params
        self.start_ms, self.scale = start_ms, time_scale
        self.clock_s = 0.0
        self.events: list[PlannedEvent] = []
        self.shown_weights: Floats | None = None
        self.ids = _UuidSource(rng)
        devices = world.member_devices[member]
        # The primary device most of the time, the others now and then.
        device = devices[0] if len(devices) == 1 or rng.random() < 0.6 else _pick(rng, devices[1:])
        versions = APP_VERSIONS.get(device, ("app-1.0.0",))
        self.common = {
            "user_id": world.member_ids[member],
            "device": device,
            "country": world.countries[int(world.member_country[member])],
            "app_version": _pick(rng, versions),
        }

    def run(self) -> list[PlannedEvent]:
        shown = self.home_page()
        for step in range(self.p.max_steps):
            if step and not self.rng.random() < self.p.continue_after_browse:
                break
            title, page = self.pick_next(shown)
            if title is None:
                break
            self.wait(self.p.think_time_s)
            self.emit("view", title, page=page)
            fit = self.fit(title)
            if self.rng.random() < _sigmoid(-0.3 + 0.9 * math.log(fit)):
                stayed = self.watch(title, fit)
                if not stayed or not self.rng.random() < self.p.continue_after_watch:
                    break
            elif self.rng.random() < self.p.preview_skip:
                watched = float(self.rng.uniform(2.0, 30.0))
                self.wait(watched)
                self.emit(
                    "skip", title, position_sec=round(watched, 1), watched_sec=round(watched, 1)
                )
        return self.events

    # --- steps ------------------------------------------------------------------------------

    def home_page(self) -> list[int]:
        low, high = self.p.titles_per_row
        rows = 1 + min(int(self.rng.poisson(self.p.extra_rows_mean)), 5)
        sizes = self.rng.integers(low, high + 1, rows)
        titles = choose_titles(self.world, self.member, int(sizes.sum()), self.rng, self.p)
        names = ["top_picks", *(_pick(self.rng, ROWS) for _ in range(rows - 1))]
        shown: list[int] = []
        start = 0
        for position, (name, size) in enumerate(zip(names, sizes.tolist(), strict=True)):
            row = titles[start : start + size].tolist()
            start += size
            if not row:
                break
            shown.extend(row)
            if position:
                self.wait(self.rng.exponential(3.0))
            self.emit_impression(row, name, position)
        if not shown:  # nothing is available in this country: an empty home page
            self.emit_impression([], "top_picks", 0)
        return shown

    def pick_next(self, shown: list[int]) -> tuple[int | None, str]:
        """The next title the member looks at: from a search, else from the rows on screen."""
        if self.rng.random() < self.p.search_share:
            return self.search(), "search_results"
        if not shown:
            return None, "home"
        if self.shown_weights is None:
            fits = self.world.genre_matrix[shown] @ self.world.member_tastes[self.member]
            self.shown_weights = np.maximum(fits * len(GENRES), 1e-6) ** self.p.taste_exponent
        return int(shown[_pick_weighted(self.rng, self.shown_weights)]), "title_detail"

    def search(self) -> int | None:
        wanted = choose_titles(self.world, self.member, 1, self.rng, self.p)
        if len(wanted) == 0:
            return None
        target = int(wanted[0])
        genres = self.world.title_genres[target]
        # People type a genre ("sci fi"), a word of the title or the title itself.
        kind = self.rng.random()
        if kind < 0.3 and genres:
            query = GENRES[genres[0]].replace("_", " ")
        elif kind < 0.7:
            words = [
                w for w in self.world.title_names[target].replace(":", "").split() if len(w) > 3
            ]
            query = (_pick(self.rng, words) if words else self.world.title_names[target]).lower()
        else:
            query = self.world.title_names[target].lower()[: int(self.rng.integers(3, 40))]
        self.wait(self.p.think_time_s)
        self.emit_search(query.strip() or "movies")
        genre = genres[0] if genres else None
        results = choose_titles(self.world, self.member, 12, self.rng, self.p, genre=genre)
        row = [target, *(int(t) for t in results if t != target)][:12]
        self.wait(1.5)
        self.emit_impression(row, "search_results", 0)
        return target

    def watch(self, title: int, fit: float) -> bool:
        """Play a title; False when the member leaves the session afterwards."""
        runtime = float(self.world.runtime_sec[title])
        episodes = 0
        while True:
            self.wait(self.rng.exponential(4.0))
            self.emit("play", title, position_sec=0.0)
            if not self.rng.random() < _sigmoid(0.2 + 0.8 * math.log(fit)):
                return self.abandon(title, runtime, fit)
            self.play_through(title, runtime)
            if self.rng.random() < self.p.rate_share:
                self.wait(self.rng.exponential(10.0))
                self.emit("rate", title, rating=_rating(self.rng, fit, completed=True))
            episodes += 1
            series = bool(self.world.is_series[title])
            if not (series and episodes < 4 and self.rng.random() < self.p.next_episode):
                return True

    def play_through(self, title: int, runtime: float) -> None:
        pauses = min(int(self.rng.poisson(self.p.pauses_mean)), 3)
        stops = np.sort(self.rng.uniform(0.05, 0.95, pauses)) * runtime
        segment_start = 0.0
        for stop in stops.tolist():
            self.wait(stop - segment_start)
            self.emit(
                "pause",
                title,
                position_sec=round(stop, 1),
                watched_sec=round(stop - segment_start, 1),
            )
            self.wait(self.rng.exponential(self.p.pause_length_s))
            self.emit("play", title, position_sec=round(stop, 1))
            segment_start = stop
        self.wait(runtime - segment_start)
        self.emit(
            "complete", title, position_sec=runtime, watched_sec=round(runtime - segment_start, 1)
        )

    def abandon(self, title: int, runtime: float, fit: float) -> bool:
        if self.rng.random() < self.p.early_abandon_share:
            # Gave up within minutes: counts as an abandoned play (< 25 % of the runtime).
            watched = min(5.0 + self.rng.exponential(240.0), 0.2 * runtime)
            self.wait(watched)
            self.emit("skip", title, position_sec=round(watched, 1), watched_sec=round(watched, 1))
            if self.rng.random() < 0.1:
                self.emit("rate", title, rating=_rating(self.rng, fit, completed=False))
            return True
        # Stopped midway and left: the last thing the device reports is a pause.
        stop = float(self.rng.uniform(0.25, 0.9)) * runtime
        self.wait(stop)
        self.emit("pause", title, position_sec=round(stop, 1), watched_sec=round(stop, 1))
        return False

    # --- helpers ----------------------------------------------------------------------------

    def fit(self, title: int) -> float:
        fit = float(self.world.genre_matrix[title] @ self.world.member_tastes[self.member])
        return max(fit * len(GENRES), 1e-6)

    def wait(self, seconds: float) -> None:
        self.clock_s += max(0.0, float(seconds))

    def now_ms(self) -> int:
        return self.start_ms + int(self.clock_s * 1000.0 / self.scale)

    def emit(self, event_type: str, title: int, **fields: Any) -> None:
        self._append({"event_type": event_type, "title_id": self.world.title_ids[title], **fields})

    def emit_impression(self, titles: list[int], row: str, position: int) -> None:
        self._append(
            {
                "event_type": "impression",
                "title_ids": [self.world.title_ids[t] for t in titles],
                "row": row,
                "position": position,
                "request_id": self.ids.next(),
            }
        )

    def emit_search(self, query: str) -> None:
        self._append({"event_type": "search", "query": query[:200]})

    def _append(self, fields: dict[str, Any]) -> None:
        at_ms = self.now_ms()
        event = {"event_id": self.ids.next(), **self.common, "occurred_at": at_ms, **fields}
        self.events.append(PlannedEvent(at_ms, event))


def _rating(rng: np.random.Generator, fit: float, *, completed: bool) -> int:
    """1-5: higher for titles that fit the member's taste, lower for abandoned ones."""
    mean = 3.2 + 0.8 * math.log(fit) - (1.2 if not completed else 0.0)
    return int(np.clip(round(mean + rng.normal(0.0, 0.8)), 1, 5))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(0, len(options)))]


def _pick_weighted(rng: np.random.Generator, weights: Floats) -> int:
    cdf = np.cumsum(weights)
    return int(np.searchsorted(cdf, rng.random() * cdf[-1], "right").clip(0, len(weights) - 1))


class _UuidSource:
    """Version-4 UUIDs drawn from the session's RNG (so a seeded run is reproducible), 16 random
    bytes at a time from a buffer filled 32 ids at once: ``uuid.UUID`` per event was a hot spot."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._hex = ""

    def next(self) -> str:
        if not self._hex:
            self._hex = self._rng.bytes(16 * 32).hex()
        h, self._hex = self._hex[:32], self._hex[32:]
        return format_uuid4(h)


def random_uuid(rng: np.random.Generator) -> str:
    """One version-4 UUID from ``rng``."""
    return format_uuid4(rng.bytes(16).hex())


def format_uuid4(random_hex: str) -> str:
    """32 random hex digits as a version-4 UUID string (version nibble 4, variant bits 10xx)."""
    h = random_hex
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


_VARIANT = "89ab"
