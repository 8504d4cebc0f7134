"""Fold a batch of consumed records into member states: the job's per-batch logic, no I/O.

A batch holds records of many members from several partitions. Each member's state is decoded
once, every record of that member is applied in partition order, and the state is pruned and
encoded once: one table/changelog write and one store snapshot per member per batch instead of
one per event (docs/features.md, "Throughput").

    result = fold_batch(records, load=decoding(table_data.get), catalog=catalog, grace_ms=300_000)
    for update in result.updates: ...  # encoded state + feature snapshot per changed member
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from recsys.catalog import ID_PATTERN, ISO_COUNTRIES
from recsys.events.v1 import events_pb2
from recsys.features.state import HOUR_MS, Applied, UserState, event_time_ms
from recsys.features.titles import Catalog
from recsys.log import get_logger
from recsys_features.snapshot import FeatureSnapshot

__all__ = [
    "FUTURE",
    "INVALID",
    "BatchResult",
    "DeadLetter",
    "Loader",
    "MemberUpdate",
    "Record",
    "decoding",
    "fold_batch",
]

log = get_logger(__name__)

INVALID = "invalid"  # outcome of records that are not a well-formed event
FUTURE = "future"  # outcome of events from beyond the wall clock plus the allowed skew
FAILED = "failed"  # outcome of events whose folding raised (a bug the dead letters preserve)

# The ids the ingest API accepts (recsys.catalog.ID_PATTERN) and event ids up to 64 characters:
# a record written to Kafka by anything else must not grow member states without bound.
_EVENT_ID = re.compile(r"[\x21-\x7e]{1,64}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed record: where it came from and its raw value."""

    partition: int
    value: bytes
    offset: int = -1
    key: bytes | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record the job cannot process, kept with why (the dead-letter topic's record)."""

    record: Record
    reason: str


# key -> the member's current state, None for a member never seen. The state returned is
# updated in place, so a loader that caches states keeps them current.
Loader = Callable[[bytes], UserState | None]


def decoding(get: Callable[[bytes], bytes | None]) -> Loader:
    """A loader that decodes what ``get`` returns (encoded states, e.g. the table's store)."""

    def load(key: bytes) -> UserState | None:
        raw = get(key)
        return None if raw is None else UserState.decode(raw)

    return load


@dataclass(frozen=True, slots=True)
class MemberUpdate:
    key: bytes  # user_id, the table and changelog key
    partition: int
    member: UserState  # the state after the batch (the loader's object, updated)
    state: bytes  # ... and encoded
    snapshot: FeatureSnapshot
    country: str  # the member's country and (title, latest play ms): their trending share
    plays: tuple[tuple[str, int], ...]
    idle_candidate_ms: int | None  # last event of a session not yet summarised
    # False when the batch only re-delivered events the state holds: the stores are written
    # again (a crash may have lost that write), the table and changelog are not.
    changed: bool = True
    # The offset of the member's last record in the batch: while a store has not written this
    # snapshot, the consumer commits no further, so a crash re-delivers that record (at least).
    offset: int = -1

    @classmethod
    def of(
        cls, key: bytes, partition: int, state: UserState, *, changed: bool = True, offset: int = -1
    ) -> MemberUpdate:
        return cls(
            key,
            partition,
            state,
            state.encode(),
            FeatureSnapshot(key.decode(), state.watermark_ms, state.features()),
            state.country,
            tuple((title, at_ms) for at_ms, title in state.watched),
            state.idle_candidate_ms,
            changed,
            offset,
        )


@dataclass(slots=True)
class BatchResult:
    updates: list[MemberUpdate] = field(default_factory=list)
    late: list[tuple[bytes, bytes]] = field(default_factory=list)  # key, the original record
    sessions: list[tuple[bytes, bytes]] = field(default_factory=list)  # key, summary JSON
    dead: list[DeadLetter] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)  # Applied values, INVALID, FUTURE...

    @property
    def changed(self) -> list[MemberUpdate]:
        """The updates whose state changed (table and changelog writes)."""
        return [u for u in self.updates if u.changed]


Event = tuple[events_pb2.Event, Record]


@dataclass(frozen=True, slots=True)
class _Rules:
    """What folding a member's events needs besides the events and the state."""

    catalog: Catalog
    grace_ms: int
    dedup_ms: int
    limit_ms: int | None


def fold_batch(
    records: Iterable[Record],
    *,
    load: Loader,
    catalog: Catalog,
    grace_ms: int,
    dedup_ms: int = HOUR_MS,
    limit_ms: int | None = None,
    partition_of: Callable[[bytes], int] | None = None,
    reload: Loader | None = None,
) -> BatchResult:
    """Apply ``records`` to the states ``load(key)`` returns (None for a new member).

    ``limit_ms`` (the wall clock plus the allowed skew) refuses events from further ahead and
    heals states that hold some (:meth:`UserState.heal`); ``partition_of`` refuses records on a
    partition other than their member's (a producer that did not key by user_id would let two
    workers fold one member). Refused records become dead letters with their reason. If folding
    a member's events raises, its events are applied one at a time to a state from ``reload``
    (default ``load``; it must not return an object the failed attempt changed) and those that
    raise become dead letters: a poison record never stops the job.
    """
    result = BatchResult()
    rules = _Rules(catalog, grace_ms, dedup_ms, limit_ms)
    members = _by_member(records, result, limit_ms=limit_ms, partition_of=partition_of)
    for key, (partition, events) in members.items():
        try:
            state = _load(load, key, partition, result)
            update = _fold_member(key, partition, state, events, result, rules)
        except Exception:
            log.exception("fold_failed", member=key.decode(errors="replace"), events=len(events))
            state = _load(reload or load, key, partition, result)
            update = _fold_one_by_one(key, partition, state, events, result, rules)
        if update is not None:
            result.updates.append(update)
    return result


def _by_member(
    records: Iterable[Record],
    result: BatchResult,
    *,
    limit_ms: int | None,
    partition_of: Callable[[bytes], int] | None,
) -> dict[bytes, tuple[int, list[Event]]]:
    """Decode and check each record; group the good ones by member, in partition order."""
    members: dict[bytes, tuple[int, list[Event]]] = {}
    for record in records:
        try:
            event = events_pb2.Event.FromString(record.value)
        except DecodeError as exc:
            _refuse(result, INVALID, record, f"not a recsys.events.v1.Event: {exc}")
            continue
        problem = _problem(event)
        if problem:
            _refuse(result, INVALID, record, problem)
            continue
        if limit_ms is not None and (ahead := event_time_ms(event) - limit_ms) > 0:
            _refuse(
                result, FUTURE, record, f"occurred_at is {ahead / 1000:.0f} s past the skew bound"
            )
            continue
        key = event.user_id.encode()
        if partition_of is not None and (home := partition_of(key)) != record.partition:
            _refuse(
                result,
                INVALID,
                record,
                f"user_id belongs to partition {home}, not "
                f"{record.partition}: the producer must key records by user_id",
            )
            continue
        entry = members.get(key)
        if entry is None:
            entry = members[key] = (record.partition, [])
        entry[1].append((event, record))
    return members


def _problem(event: events_pb2.Event) -> str:
    """What makes ``event`` unfit for a member's state ("" if nothing): the checks the ingest
    API makes on what a state keeps, for records that reached Kafka some other way."""
    if not event.user_id or ID_PATTERN.fullmatch(event.user_id) is None:
        return f"user_id {event.user_id[:80]!r} is not 1-64 of letters, digits and _ . : -"
    if not _EVENT_ID.fullmatch(event.event_id):
        return f"event_id {event.event_id[:80]!r} is not 1-64 printable ASCII characters"
    if event.title_id and ID_PATTERN.fullmatch(event.title_id) is None:
        return f"title_id {event.title_id[:80]!r} is not 1-64 of letters, digits and _ . : -"
    if event.country and event.country not in ISO_COUNTRIES:
        return f"country {event.country[:80]!r} is not an ISO 3166-1 alpha-2 code"
    kind = event.WhichOneof("details")
    if kind is not None:
        for field, value in getattr(event, kind).ListFields():
            # NaN or infinity would sum into windows and encode as JSON null.
            if isinstance(value, float) and not math.isfinite(value):
                return f"{kind}.{field.name} is {value}"
    return ""


def _refuse(result: BatchResult, outcome: str, record: Record, reason: str) -> None:
    result.outcomes[outcome] += 1
    result.dead.append(DeadLetter(record, f"{outcome}: {reason}"))


def _load(load: Loader, key: bytes, partition: int, result: BatchResult) -> UserState:
    try:
        state = load(key)
    except Exception as exc:  # a state this code cannot read: start the member afresh
        log.exception("state_unreadable", member=key.decode(errors="replace"))
        result.dead.append(
            DeadLetter(Record(partition, b"", key=key), f"unreadable_state: {exc!r}")
        )
        return UserState()
    return UserState() if state is None else state


def _fold_member(
    key: bytes,
    partition: int,
    state: UserState,
    events: list[Event],
    result: BatchResult,
    rules: _Rules,
) -> MemberUpdate | None:
    changed = rules.limit_ms is not None and state.heal(rules.limit_ms)
    rewrite = False
    late: list[tuple[bytes, bytes]] = []
    sessions: list[tuple[bytes, bytes]] = []
    outcomes: list[str] = []
    for event, record in events:
        outcome = state.apply(
            event, rules.catalog, grace_ms=rules.grace_ms, dedup_ms=rules.dedup_ms
        )
        outcomes.append(outcome.result.value)
        if outcome.result is Applied.APPLIED:
            changed = True
            if outcome.closed_session is not None:
                sessions.append((key, outcome.closed_session.to_json()))
        else:
            # A re-delivered event (after a crash, its offset was not committed) may be one whose
            # store write was lost: write the member again (absolute values, harmless).
            rewrite = True
            if outcome.result is Applied.LATE:
                late.append((key, record.value))
    if changed:
        state.prune(grace_ms=rules.grace_ms, dedup_ms=rules.dedup_ms)
    update = (
        MemberUpdate.of(key, partition, state, changed=changed, offset=events[-1][1].offset)
        if changed or rewrite
        else None
    )
    # Only once the member's whole fold went through: a failure leaves the result untouched.
    counts = result.outcomes
    for name in outcomes:
        counts[name] += 1
    result.late += late
    result.sessions += sessions
    return update


def _fold_one_by_one(
    key: bytes,
    partition: int,
    state: UserState,
    events: list[Event],
    result: BatchResult,
    rules: _Rules,
) -> MemberUpdate | None:
    """The slow path after a failed fold: each event on a copy of the state so far; those
    whose fold raises become dead letters, the others are kept (one event at a time gives the
    state a batch gives). A state that fails by itself (no event needed) is the culprit: it goes
    to the dead letters and the member starts afresh, so no member is poisoned for good."""
    try:
        encoded = state.encode()
        MemberUpdate.of(key, partition, UserState.decode(encoded))
    except Exception as exc:
        log.exception("state_unusable", member=key.decode(errors="replace"))
        letter = Record(partition, _encoded_or_empty(state), key=key)
        result.dead.append(DeadLetter(letter, f"unreadable_state: {exc!r}"))
        encoded = UserState().encode()
    changed = False
    last: MemberUpdate | None = None
    for event, record in events:
        scratch = BatchResult()
        try:
            trial = UserState.decode(encoded)
            update = _fold_member(key, partition, trial, [(event, record)], scratch, rules)
        except Exception as exc:
            result.outcomes[FAILED] += 1
            result.dead.append(DeadLetter(record, f"{FAILED}: {exc!r}"))
            continue
        result.outcomes += scratch.outcomes
        result.late += scratch.late
        result.sessions += scratch.sessions
        if update is not None:
            changed = changed or update.changed
            encoded = update.state
            last = update
    if last is None:
        return None
    return MemberUpdate.of(
        key, partition, UserState.decode(encoded), changed=changed, offset=events[-1][1].offset
    )


def _encoded_or_empty(state: UserState) -> bytes:
    try:
        return state.encode()
    except Exception:
        return b""
