"""Helpers for the feature stream job tests: scripted events, topics, a worker subprocess."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.admin import NewTopic

from recsys.clients.kafka import kafka_admin, kafka_producer
from recsys.config import Settings
from recsys.events.v1 import events_pb2
from recsys.features.titles import DictCatalog, TitleInfo
from recsys_features.job import FeatureJob
from recsys_features.metrics import FeatureMetrics
from recsys_features.snapshot import FeatureSnapshot

T = TypeVar("T")
J = TypeVar("J", bound=FeatureJob)

# A fixed Monday: 10:00 UTC is the start of an hour and the day started 10 h ago.
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

_TYPES = {
    "view": events_pb2.EVENT_TYPE_VIEW,
    "play": events_pb2.EVENT_TYPE_PLAY,
    "pause": events_pb2.EVENT_TYPE_PAUSE,
    "complete": events_pb2.EVENT_TYPE_COMPLETE,
    "rate": events_pb2.EVENT_TYPE_RATE,
    "search": events_pb2.EVENT_TYPE_SEARCH,
    "skip": events_pb2.EVENT_TYPE_SKIP,
}
_DEVICES = {
    "tv": events_pb2.DEVICE_TV,
    "mobile": events_pb2.DEVICE_MOBILE,
    "tablet": events_pb2.DEVICE_TABLET,
    "web": events_pb2.DEVICE_WEB,
    "console": events_pb2.DEVICE_CONSOLE,
}


# The titles the scripted sequences use, as an in-memory catalog (unit tests).
CATALOG = DictCatalog(
    {
        "tt_action": TitleInfo(("action", "thriller"), 3600.0),
        "tt_drama": TitleInfo(("drama", "comedy"), 6000.0),
        "tt_doc": TitleInfo(("documentary",), 5400.0),
        "tt_comedy": TitleInfo(("comedy",), 1800.0),
    }
)


def event(
    event_id: str,
    kind: str,
    at: timedelta,
    *,
    user: str = "u1",
    title: str = "",
    device: str = "tv",
    country: str = "US",
    position: float = 0.0,
    watched: float = 0.0,
    query: str = "",
) -> events_pb2.Event:
    """One event ``at`` after :data:`T0`."""
    ev = events_pb2.Event(
        event_id=event_id,
        event_type=_TYPES[kind],
        user_id=user,
        title_id=title,
        device=_DEVICES[device],
        country=country,
    )
    ev.occurred_at.FromDatetime(T0 + at)
    ev.received_at.FromDatetime(T0 + at)
    if kind == "play":
        ev.play.position_sec = position
    elif kind == "pause":
        ev.pause.position_sec = position
        ev.pause.watched_sec = watched
    elif kind == "complete":
        ev.complete.position_sec = position
        ev.complete.watched_sec = watched
    elif kind == "skip":
        ev.skip.position_sec = position
        ev.skip.watched_sec = watched
    elif kind == "search":
        ev.search.query = query
    elif kind == "view":
        ev.view.page = "home"
    return ev


class NullStore:
    """A store that accepts every write (unit tests of the job's logic)."""

    async def write(self, snapshots: Sequence[FeatureSnapshot], *, written_at_ms: int) -> None:
        pass


def make_job(job_class: type[J] = FeatureJob, /, **features: Any) -> J:  # type: ignore[assignment]
    """A FeatureJob (or subclass) with default settings changed by ``features``, writing to
    null stores, with metrics in a registry of its own."""
    from prometheus_client import CollectorRegistry

    settings = Settings()
    settings.features = settings.features.model_copy(update=features)
    store: Any = NullStore()
    return job_class(
        settings,
        catalog=DictCatalog({}),
        redis_store=store,
        cassandra_store=store,
        trending_store=store,
        metrics=FeatureMetrics.create(registry=CollectorRegistry()),
    )


def minutes(m: float) -> timedelta:
    return timedelta(minutes=m)


async def produce_bronze_rows(
    settings: Settings, topic: str, rows: Iterable[dict[str, Any]]
) -> int:
    """Bronze-shaped rows (a pipelines scenario's, or ``tests.lake_support.bronze_row``'s) sent to
    ``topic`` as the Events they archive, keyed by member; returns how many were sent (a row of
    an event type the schema lacks is skipped)."""
    from recsys_pipelines.realtime_asof import to_event

    producer = kafka_producer(settings.kafka, linger_ms=5)
    await producer.start()
    sent = 0
    try:
        for row in rows:
            event = to_event({**row, "t_us": row["occurred_at"]})
            if event is None:
                continue
            await producer.send(topic, event.SerializeToString(), key=row["user_id"].encode())
            sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def create_topics(settings: Settings, names: Sequence[str], partitions: int) -> None:
    admin = kafka_admin(settings.kafka)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def delete_topics(settings: Settings, prefix: str) -> None:
    admin = kafka_admin(settings.kafka)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


async def produce(settings: Settings, topic: str, events: Sequence[events_pb2.Event]) -> None:
    """Send in order, keyed by user_id (as the ingest service does)."""
    producer = kafka_producer(settings.kafka)
    await producer.start()
    try:
        for ev in events:
            await producer.send(topic, ev.SerializeToString(), key=ev.user_id.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def wait_for(
    probe: Callable[[], Awaitable[T | None]],
    *,
    limit_s: float = 60.0,
    what: str = "condition",
    proc: subprocess.Popen[Any] | None = None,
) -> T:
    """Poll ``probe`` until it returns something other than None (a wait, not a timing check)."""
    deadline = time.monotonic() + limit_s
    while True:
        result = await probe()
        if result is not None:
            return result
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the worker exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


def worker_env(
    settings: Settings, *, unique: str, keyspace: str, key_prefix: str, data_dir: Path
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "RECSYS_FEATURES__APP_ID": f"test-features-{unique}",
            "RECSYS_FEATURES__EVENTS_TOPIC": f"test.{unique}.events",
            "RECSYS_FEATURES__LATE_TOPIC": f"test.{unique}.late",
            "RECSYS_FEATURES__SESSIONS_TOPIC": f"test.{unique}.sessions",
            "RECSYS_FEATURES__DEAD_LETTER_TOPIC": f"test.{unique}.dlq",
            "RECSYS_FEATURES__PARTITIONS": "3",
            "RECSYS_FEATURES__DATA_DIR": str(data_dir),
            "RECSYS_FEATURES__FLUSH_INTERVAL_S": "0.05",
            "RECSYS_FEATURES__CASSANDRA_FLUSH_INTERVAL_S": "0.2",
            "RECSYS_FEATURES__TRENDING_FLUSH_INTERVAL_S": "0.2",
            "RECSYS_FEATURES__IDLE_SESSION_CHECK_S": "0.2",
            "RECSYS_FEATURES__COMMIT_INTERVAL_S": "0.5",
            "RECSYS_FEATURES__SESSION_TIMEOUT_S": "6",
            "RECSYS_REDIS__KEY_PREFIX": key_prefix,
            "RECSYS_CASSANDRA__KEYSPACE": keyspace,
            "RECSYS_METRICS__PORT": "0",
            "RECSYS_LOG__LEVEL": "WARNING",
        }
    )
    return env


@contextmanager
def running_worker(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[Any]]:
    """A ``recsys-features`` worker process; stopped (SIGTERM, then SIGKILL) on exit."""
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recsys_features"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def workload(users: int, per_user: int, *, seed: int = 7) -> list[events_pb2.Event]:
    """A deterministic mixed stream: plays, pauses, completions, skips, searches, with
    duplicates, out-of-order events inside the grace period and some beyond it.

    Each member's last record is their newest event, so a member is fully processed once the
    stored ``_event_time_ms`` equals that event's time.
    """
    import random

    rng = random.Random(seed)
    titles = ["tt_action", "tt_drama", "tt_doc", "tt_comedy", "tt_unknown"]
    kinds = ["view", "play", "play", "pause", "complete", "skip", "search"]
    devices = list(_DEVICES)
    timed: list[tuple[float, int, events_pb2.Event]] = []
    seq = 0
    for u in range(users):
        user = f"w{u:03d}"
        t = rng.uniform(0, 30)
        mine: list[events_pb2.Event] = []
        for i in range(per_user):
            t += rng.choice([0.5, 1, 2, 3, 5, 8, 45])  # minutes; 45 splits sessions
            kind = rng.choice(kinds)
            ev = event(
                f"{user}-{i}",
                kind,
                minutes(t),
                user=user,
                title="" if kind == "search" else rng.choice(titles),
                device=rng.choice(devices),
                position=rng.choice([30.0, 200.0, 1500.0, 5000.0]),
                watched=rng.choice([30.0, 200.0, 900.0]),
                query=rng.choice(["space", "love", "war", "cats"]),
            )
            mine.append(ev)
            r = rng.random()
            if r < 0.05 and mine:  # a duplicate of an earlier event
                mine.append(rng.choice(mine))
            elif r < 0.10:  # out of order inside the grace period
                late = event(f"{user}-{i}-g", "search", minutes(t - 2), user=user, query="g")
                mine.append(late)
            elif r < 0.13:  # beyond the grace period
                mine.append(
                    event(f"{user}-{i}-l", "play", minutes(t - 20), user=user, title="tt_doc")
                )
        t += 1
        mine.append(event(f"{user}-last", "view", minutes(t), user=user, title="tt_drama"))
        for ev in mine:
            seq += 1
            timed.append((ev.occurred_at.seconds + 0.0, seq, ev))
    # Interleave members roughly by time while keeping each member's own order.
    by_user: dict[str, list[events_pb2.Event]] = {}
    for _, _, ev in sorted(timed, key=lambda x: x[1]):
        by_user.setdefault(ev.user_id, []).append(ev)
    out: list[events_pb2.Event] = []
    cursors = dict.fromkeys(by_user, 0)
    while cursors:
        user = rng.choice(sorted(cursors))
        out.append(by_user[user][cursors[user]])
        cursors[user] += 1
        if cursors[user] == len(by_user[user]):
            del cursors[user]
    return out


def last_event_ms(events: Sequence[events_pb2.Event]) -> dict[str, int]:
    """Each member's newest event time in ms."""
    out: dict[str, int] = {}
    for ev in events:
        ms = ev.occurred_at.seconds * 1000 + ev.occurred_at.nanos // 1_000_000
        out[ev.user_id] = max(out.get(ev.user_id, 0), ms)
    return out


# --- the scripted sequences of the end-to-end test, with their hand-computed features ---


def scripted_u1() -> list[events_pb2.Event]:
    return [
        event("e1", "view", minutes(0), title="tt_action"),
        event("e2", "play", minutes(1), title="tt_action"),
        # 240 s into a 60-minute title: before 25 % (900 s) -> abandoned.
        event("e3", "skip", minutes(5), title="tt_action", position=240, watched=240),
        event("e4", "search", minutes(6), query="space"),
        event("e5", "play", minutes(7), title="tt_drama"),
        event("e6", "pause", minutes(17), title="tt_drama", position=600, watched=600),
        event("e2", "play", minutes(1), title="tt_action"),  # duplicate of e2: dropped
        event("e7", "play", minutes(19), title="tt_drama", position=600),
        event("e8", "complete", minutes(20), title="tt_drama", position=6000, watched=300),
        event("e9", "play", minutes(22), title="tt_unknown", device="mobile"),
        # Unknown runtime: never counts as abandoned.
        event("e10", "skip", minutes(23), title="tt_unknown", device="mobile", position=10),
        event("e11", "search", minutes(24), device="mobile", query="drama"),
        event("e12", "search", minutes(25), device="mobile", query="comedy"),
        # Out of order but inside the 5 min grace (watermark 10:25): applied to its window.
        event("e13", "search", minutes(22), device="tv", query="late ok"),
        # 15 min behind the watermark: late, to the late topic, not applied.
        event("e14", "play", minutes(10), title="tt_doc"),
    ]


EXPECTED_U1: dict[str, Any] = {
    # drama 600 + 300 s of watch time vs action 240 s, all inside (09:55, 10:25]
    "current_genre_last_30min": "drama",
    "session_duration_sec": 25 * 60,
    "plays_abandoned_last_1hr": 1,
    # plays e2, e5, e7, e9 (the duplicate e2 and the late e14 not counted); one completion
    "content_completion_rate_today": 0.25,
    "current_device_type": "mobile",
    "search_terms_last_5min": ["comedy", "drama", "late ok"],
    "recently_watched_title_ids": ["tt_unknown", "tt_drama", "tt_action"],
}


def scripted_u2() -> list[events_pb2.Event]:
    return [
        event("s1", "view", minutes(0), user="u2", title="tt_comedy", device="web"),
        event("s2", "play", minutes(10), user="u2", title="tt_comedy", device="web"),
        # 40 min of inactivity: a new session starts at 10:50.
        event("s3", "play", minutes(50), user="u2", title="tt_doc", device="web"),
        event("s4", "pause", minutes(60), user="u2", title="tt_doc", device="web", watched=600),
        # Exactly 30 min after the last event: still the same session (the gap must be exceeded).
        event("s5", "search", minutes(90), user="u2", device="web", query="docs"),
    ]
