"""Fold a batch of consumed records into member states: the job's per-batch logic, no I/O.

A batch holds records of many members from several partitions. Each member's state is decoded
once, every record of that member is applied in partition order, and the state is pruned and
encoded once: one table/changelog write and one store snapshot per member per batch instead of
one per event (docs/features.md, "Throughput").

    result = fold_batch(records, load=decoding(table_data.get), catalog=catalog, grace_ms=300_000)
    for update in result.updates: ...  # encoded state + feature snapshot per changed member
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from recsys.events.v1 import events_pb2
from recsys_features.catalog import Catalog
from recsys_features.snapshot import FeatureSnapshot
from recsys_features.state import HOUR_MS, Applied, UserState

__all__ = ["INVALID", "BatchResult", "Loader", "MemberUpdate", "Record", "decoding", "fold_batch"]

INVALID = "invalid"  # outcome label of undecodable records and events without ids


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed record: where it came from and its raw value."""

    partition: int
    value: bytes


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

    @classmethod
    def of(cls, key: bytes, partition: int, state: UserState) -> MemberUpdate:
        return cls(
            key,
            partition,
            state,
            state.encode(),
            FeatureSnapshot(key.decode(), state.watermark_ms, state.features()),
            state.country,
            tuple((title, at_ms) for at_ms, title in state.watched),
            state.idle_candidate_ms,
        )


@dataclass(slots=True)
class BatchResult:
    updates: list[MemberUpdate] = field(default_factory=list)
    late: list[tuple[bytes, bytes]] = field(default_factory=list)  # key, the original record
    sessions: list[tuple[bytes, bytes]] = field(default_factory=list)  # key, summary JSON
    outcomes: Counter[str] = field(default_factory=Counter)  # Applied values and INVALID


def fold_batch(
    records: Iterable[Record],
    *,
    load: Loader,
    catalog: Catalog,
    grace_ms: int,
    dedup_ms: int = HOUR_MS,
) -> BatchResult:
    """Apply ``records`` to the states ``load(key)`` returns (None for a new member)."""
    result = BatchResult()
    members: dict[bytes, tuple[int, list[tuple[events_pb2.Event, bytes]]]] = {}
    for record in records:
        try:
            event = events_pb2.Event.FromString(record.value)
        except DecodeError:
            result.outcomes[INVALID] += 1
            continue
        if not event.user_id or not event.event_id:
            result.outcomes[INVALID] += 1
            continue
        key = event.user_id.encode()
        entry = members.get(key)
        if entry is None:
            entry = members[key] = (record.partition, [])
        entry[1].append((event, record.value))

    for key, (partition, events) in members.items():
        loaded = load(key)
        state = UserState() if loaded is None else loaded
        changed = False
        for event, raw in events:
            outcome = state.apply(event, catalog, grace_ms=grace_ms, dedup_ms=dedup_ms)
            result.outcomes[outcome.result.value] += 1
            if outcome.result is Applied.LATE:
                result.late.append((key, raw))
            elif outcome.result is Applied.APPLIED:
                changed = True
                if outcome.closed_session is not None:
                    result.sessions.append((key, outcome.closed_session.to_json()))
        if changed:
            state.prune(grace_ms=grace_ms, dedup_ms=dedup_ms)
            result.updates.append(MemberUpdate.of(key, partition, state))
    return result
