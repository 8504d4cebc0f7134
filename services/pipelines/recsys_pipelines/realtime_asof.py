"""Real-time user features as the online store would have served them at a past instant.

The values are rebuilt from bronze with the stream job's own fold (``recsys.features.state``):
the same code that computes them online, so the training set cannot drift from serving. For a
label at time T the member's bronze events with ``occurred_at < T`` are folded in event-time
order, the features read, and each one whose registry TTL has passed since the member's last
event is replaced by its default (what Redis would have answered: the key had expired).

    values = realtime_at(events, titles, [("u1", t_us), ...])   # one dict per label, same order

Differences from what the worker actually served, on purpose: events are folded in event-time
order (the worker folds in arrival order and drops events later than its grace period), and the
country-level trending lists are not rebuilt (entity ``country``, not the member's).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from recsys.events.v1 import events_pb2
from recsys.features import FEATURES, Entity, FeatureKind
from recsys.features.state import UserState
from recsys.features.titles import DictCatalog, TitleInfo

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

__all__ = ["REALTIME_FEATURES", "catalog_of", "realtime_at", "to_event"]

REALTIME_FEATURES = list(FEATURES.select(entity=Entity.USER, kind=FeatureKind.REALTIME))
_TTL_US = {f.name: int(f.ttl.total_seconds() * 1_000_000) for f in REALTIME_FEATURES if f.ttl}
# Replaying in event-time order, nothing is late; the grace only matters to out-of-order input.
_GRACE_MS = 300_000
_SCALARS = {
    "position_sec",
    "watched_sec",
    "rating",
    "query",
    "page",
    "row",
    "position",
    "request_id",
}


def catalog_of(titles: pa.Table) -> DictCatalog:
    """The stream job's title lookup from dim_titles rows (genres, runtime)."""
    return DictCatalog(
        {
            row["title_id"]: TitleInfo(
                tuple(row["genres"] or ()),
                float(row["runtime_min"]) * 60.0 if row["runtime_min"] else None,
            )
            for row in titles.select(["title_id", "genres", "runtime_min"]).to_pylist()
        }
    )


def to_event(row: dict[str, Any]) -> events_pb2.Event | None:
    """The ``Event`` a bronze row archived, or None for an event type this schema lacks."""
    kind = row["event_type"]
    try:
        event_type = events_pb2.EventType.Value(f"EVENT_TYPE_{kind.upper()}")
    except ValueError:
        return None
    event = events_pb2.Event(
        event_id=row["event_id"],
        event_type=event_type,
        user_id=row["user_id"],
        title_id=row["title_id"] or "",
        country=row["country"] or "",
    )
    if row["device"]:
        with contextlib.suppress(ValueError):
            event.device = events_pb2.Device.Value(f"DEVICE_{row['device'].upper()}")
    event.occurred_at.FromMicroseconds(row["t_us"])
    # The details case of every event type is named after it (play -> play, ...).
    if row["details"]:
        message = getattr(event, kind)
        message.SetInParent()
        for key, value in orjson.loads(row["details"]).items():
            if key in _SCALARS and hasattr(message, key):
                setattr(message, key, value)
            elif key == "title_ids" and hasattr(message, key):
                message.title_ids.extend(value)
    return event


def _defaults() -> dict[str, Any]:
    return {f.name: _plain(f.default) for f in REALTIME_FEATURES}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _read(state: UserState, at_us: int) -> dict[str, Any]:
    if state.watermark_ms == 0:
        return _defaults()
    values = state.features()
    age_us = at_us - state.watermark_ms * 1000
    out = {}
    for f in REALTIME_FEATURES:
        expired = age_us > _TTL_US.get(f.name, age_us + 1)
        out[f.name] = _plain(f.default) if expired else _plain(values[f.name])
    return out


def realtime_at(
    events: pa.Table, catalog: DictCatalog, labels: Sequence[tuple[str, int]]
) -> list[dict[str, Any]]:
    """Each label's (user_id, time in µs) real-time features, from ``events``: de-duplicated
    bronze rows (event_id, event_type, user_id, title_id, device, country, details and the
    event time as ``t_us``), any order."""
    by_user: dict[str, list[tuple[int, int]]] = {}
    for index, (user, at_us) in enumerate(labels):
        by_user.setdefault(user, []).append((at_us, index))
    out: list[dict[str, Any]] = [{} for _ in labels]
    order = [("user_id", "ascending"), ("t_us", "ascending"), ("event_id", "ascending")]
    rows = events.sort_by(order)
    users = rows.column("user_id").to_pylist()
    records = rows.to_pylist()
    start = 0
    for end in _group_ends(users):
        user = users[start]
        if user in by_user:
            _replay(records[start:end], sorted(by_user.pop(user)), catalog, out)
        start = end
    for pending in by_user.values():  # members with no event before their labels
        for _, index in pending:
            out[index] = _defaults()
    return out


def _group_ends(users: list[str]) -> Iterable[int]:
    for i in range(1, len(users)):
        if users[i] != users[i - 1]:
            yield i
    if users:
        yield len(users)


def _replay(
    records: list[dict[str, Any]],
    labels: list[tuple[int, int]],
    catalog: DictCatalog,
    out: list[dict[str, Any]],
) -> None:
    state = UserState()
    position = 0
    for at_us, index in labels:
        # Strictly before the label's instant: the event at T is what the label is about.
        while position < len(records) and records[position]["t_us"] < at_us:
            event = to_event(records[position])
            if event is not None:
                state.apply(event, catalog, grace_ms=_GRACE_MS)
            position += 1
        out[index] = _read(state, at_us)
