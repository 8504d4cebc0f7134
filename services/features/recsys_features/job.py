"""The feature job's logic between Kafka and the stores, without Faust (unit-testable).

    job = FeatureJob(settings, catalog=..., redis_store=..., cassandra_store=...,
                     trending_store=..., metrics=...)
    result = job.fold(records, table_data)   # nothing written yet
    ... produce result's changelog, late, session and dead-letter records, wait for acks ...
    job.commit(result, table_data)           # table, caches, store writes, trending
    # or job.abort() if producing failed: the batch is folded again later

A batch changes nothing until its records are acknowledged, so a failed batch can be retried or
split without applying anything twice. Everything here runs under :attr:`FeatureJob.lock`
(batches, idle-session closes, evictions, recovery), so no timer sees a half-committed batch.
Why and what it guarantees: docs/features.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.partitioner import murmur2
from cachetools import LRUCache

from recsys.config import Settings
from recsys.features.state import SESSION_GAP_MS, Applied, UserState
from recsys.features.titles import Catalog
from recsys.log import get_logger
from recsys_features.cassandra_store import CassandraFeatureStore
from recsys_features.expiry import MemberClock
from recsys_features.fold import BatchResult, Loader, MemberUpdate, Record, decoding, fold_batch
from recsys_features.metrics import FeatureMetrics
from recsys_features.redis_store import RedisFeatureStore
from recsys_features.snapshot import USER_FEATURES, ttl_seconds
from recsys_features.store_writer import StoreWriter
from recsys_features.trending import PartitionTrending
from recsys_features.trending_store import TrendingStore

__all__ = ["ChangelogRecord", "FeatureJob", "Recovered", "SessionClose"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SessionClose:
    key: bytes
    partition: int
    state: bytes  # the member's state with the session marked summarised
    summary: bytes  # SessionSummary JSON


@dataclass(frozen=True, slots=True)
class ChangelogRecord:
    key: bytes
    partition: int
    state: bytes | None  # None: a tombstone (the member was evicted)


@dataclass(frozen=True, slots=True)
class Recovered:
    members: int
    healed: list[ChangelogRecord]  # repaired states, for the changelog


def member_ttl_ms(settings: Settings) -> int:
    """The member TTL: the setting, or the longest TTL of the real-time user features."""
    ttl_s = settings.features.member_ttl_s or max(ttl_seconds(n) for n in USER_FEATURES)
    return int(ttl_s * 1000)


class FeatureJob:
    """The job's runtime pieces and its per-batch logic (Faust-agnostic, testable)."""

    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Catalog,
        redis_store: RedisFeatureStore,
        cassandra_store: CassandraFeatureStore,
        trending_store: TrendingStore,
        metrics: FeatureMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        fs = settings.features
        self.settings = settings
        self.catalog = catalog
        self.metrics = metrics
        self.clock = clock
        self.lock = asyncio.Lock()
        self.grace_ms = int(fs.grace_s * 1000)
        self.dedup_ms = int(fs.dedup_window_s * 1000)
        self.skew_ms = int(fs.max_clock_skew_s * 1000)
        self.ttl_ms = member_ttl_ms(settings)
        self.partitions = fs.partitions
        writer_options: dict[str, Any] = {
            "max_members": fs.flush_max_members,
            "metrics": metrics,
            "max_pending": fs.max_pending_members,
            "max_backoff_s": fs.store_max_backoff_s,
        }
        self.redis = StoreWriter("redis", redis_store.write, **writer_options)
        self.cassandra = StoreWriter("cassandra", cassandra_store.write, **writer_options)
        self.writers = (self.redis, self.cassandra)
        self.trending_store = trending_store
        self.trending: dict[int, PartitionTrending] = {}  # partition -> its members' counts
        # partition -> member -> last event time of its open, not yet summarised session
        self.open_sessions: dict[int, dict[bytes, int]] = {}
        self.members: dict[int, MemberClock] = {}  # partition -> its members by watermark
        self._states: LRUCache[bytes, UserState] | None = (
            LRUCache(maxsize=fs.state_cache_members) if fs.state_cache_members else None
        )
        self._paused = False

    def partition_of(self, key: bytes) -> int:
        """The partition Kafka's default partitioner gives the key (the producer's choice)."""
        return (int(murmur2(key)) & 0x7FFFFFFF) % self.partitions

    def limit_ms(self) -> int:
        """The latest event time accepted now: the wall clock plus the allowed skew."""
        return int(self.clock() * 1000) + self.skew_ms

    # -- batches --------------------------------------------------------------------------------

    def fold(self, records: Iterable[Record], store: Any) -> BatchResult:
        """Fold ``records`` into the states in ``store`` (the table's storage, a mapping of
        encoded states). Writes nothing: :meth:`commit` does, once the result's records are
        acknowledged (decoded states in the cache are updated in place; :meth:`abort` drops
        them)."""
        return fold_batch(
            records,
            load=self._loader(store),
            reload=self._reloader(store),
            catalog=self.catalog,
            grace_ms=self.grace_ms,
            dedup_ms=self.dedup_ms,
            limit_ms=self.limit_ms(),
            partition_of=self.partition_of,
        )

    def commit(self, result: BatchResult, store: Any) -> None:
        """Apply a folded batch whose records the broker acknowledged."""
        for update in result.updates:
            if update.changed:
                store[update.key] = update.state
                self._remember(update.key, update.member)
                self._track(update.key, update.partition, update.member)
            for writer in self.writers:
                writer.put(update.key, update.partition, update.snapshot, update.offset)
        for outcome, count in result.outcomes.items():
            self.metrics.events.labels(outcome=outcome).inc(count)
        if duplicates := result.outcomes.get(Applied.DUPLICATE.value):
            self.metrics.duplicates.inc(duplicates)
        if result.late:
            self.metrics.late.inc(len(result.late))
        if result.sessions:
            self.metrics.sessions.inc(len(result.sessions))
        for dead in result.dead:
            self.metrics.dead_letters.labels(reason=dead.reason.split(":", 1)[0]).inc()
        self._count_members()

    def abort(self) -> None:
        """Forget cached states a failed batch may have changed (the table still has the truth)."""
        if self._states is not None:
            self._states.clear()

    def has_room(self) -> bool:
        """False while a store's backlog is full: take no batch until it drains."""
        room = all(writer.has_room() for writer in self.writers)
        if room == self._paused:
            self._paused = not room
            self.metrics.paused.set(0 if room else 1)
            log.warning(
                "paused_for_store_backlog" if not room else "resumed_after_store_backlog",
                pending={w.store: len(w.pending) for w in self.writers},
            )
        return room

    def commit_floor(self, partition: int) -> int | None:
        """The lowest event offset of ``partition`` whose member still waits for a store write:
        the consumer commits no further (a crash then re-delivers it, and the member is written
        again)."""
        floors = [f for w in self.writers if (f := w.floor(partition)) is not None]
        return min(floors) if floors else None

    # -- the loader and the cache ---------------------------------------------------------------

    def _loader(self, store: Any) -> Loader:
        # Decoded states of recently active members stay beside the table (bounded, LRU), so a
        # member's next batch skips the decode. The table's store stays the source of truth:
        # the cache only ever holds what was last written there by this worker (or a fold in
        # flight, which abort() drops), and it is dropped for partitions handed over and on
        # every recovery.
        decode = decoding(store.get)
        if self._states is None:
            return decode
        states = self._states

        def load(key: bytes) -> UserState | None:
            state = states.get(key)
            return decode(key) if state is None else state

        return load

    def _reloader(self, store: Any) -> Loader:
        decode = decoding(store.get)

        def reload(key: bytes) -> UserState | None:
            if self._states is not None:
                self._states.pop(key, None)
            return decode(key)

        return reload

    def _remember(self, key: bytes, state: UserState) -> None:
        if self._states is not None:
            self._states[key] = state

    def _track(self, key: bytes, partition: int, state: UserState) -> None:
        """Index a changed member: trending share, open session, watermark clock."""
        trending = self.trending.get(partition)
        if trending is None:
            trending = self.trending[partition] = PartitionTrending()
        trending.update(
            key,
            country=state.country,
            plays=[(title, at_ms) for at_ms, title in state.watched],
            watermark_ms=state.watermark_ms,
        )
        sessions = self.open_sessions.setdefault(partition, {})
        idle_candidate = state.idle_candidate_ms
        if idle_candidate is None:
            sessions.pop(key, None)
        else:
            sessions[key] = idle_candidate
        clock = self.members.get(partition)
        if clock is None:
            clock = self.members[partition] = MemberClock()
        clock.touch(key, watermark_ms=state.watermark_ms)

    def _count_members(self) -> None:
        self.metrics.members.set(sum(len(c) for c in self.members.values()))
        self.metrics.trending_members.set(sum(len(t) for t in self.trending.values()))

    # -- timers ---------------------------------------------------------------------------------

    def close_idle_sessions(self, store: Any) -> list[SessionClose]:
        """Summarise sessions idle past the gap (plus grace) in their partition's event time.

        A partition's event time is its newest member event; an idle member's session closes
        once the partition has moved more than ``gap + grace`` past its last event, so an
        in-grace event of that member can no longer belong to it. The summary is marked in the
        member's state (written to ``store``), so the member's next event does not emit it
        again. Returns the closes for the changelog and the sessions topic.
        """
        closes: list[SessionClose] = []
        load = self._loader(store)
        for partition, sessions in self.open_sessions.items():
            trending = self.trending.get(partition)
            if trending is None:
                continue
            cutoff = trending.watermark_ms - SESSION_GAP_MS - self.grace_ms
            for key in [k for k, last in sessions.items() if last < cutoff]:
                del sessions[key]
                state = load(key)
                summary = state.close_idle(key.decode()) if state is not None else None
                if state is None or summary is None:
                    continue
                encoded = state.encode()
                store[key] = encoded
                self._remember(key, state)
                closes.append(SessionClose(key, partition, encoded, summary.to_json()))
        if closes:
            self.metrics.sessions.inc(len(closes))
        return closes

    def evict_silent_members(self, store: Any) -> list[ChangelogRecord]:
        """Drop members silent for the member TTL behind their partition's event time; returns
        the tombstones for the changelog (a recovering worker must not bring them back)."""
        tombstones: list[ChangelogRecord] = []
        for partition, clock in self.members.items():
            trending = self.trending.get(partition)
            if trending is None:
                continue
            for key in clock.expired(before_ms=trending.watermark_ms - self.ttl_ms):
                self._drop_state(store, key)
                self.open_sessions.get(partition, {}).pop(key, None)
                trending.forget(key)
                tombstones.append(ChangelogRecord(key, partition, None))
        if tombstones:
            self.metrics.evicted.inc(len(tombstones))
            self._count_members()
        return tombstones

    def _drop_state(self, store: Any, key: bytes) -> None:
        store.pop(key, None)
        # Faust's in-memory store remembers the partition of every key it recovered.
        key_partition = getattr(store, "_key_partition", None)
        if key_partition is not None:
            key_partition.pop(key, None)
        if self._states is not None:
            self._states.pop(key, None)

    async def flush_trending(self, partitions: set[int] | None = None) -> None:
        """Write the changed per-country counts of ``partitions`` (default all) to Redis."""
        for partition, trending in list(self.trending.items()):
            if partitions is not None and partition not in partitions:
                continue
            changed = trending.take_dirty()
            if not changed:
                continue
            try:
                await self.trending_store.write(partition, changed)
            except Exception as exc:  # the next tick retries with the then-current counts
                log.warning("trending_write_failed", error=repr(exc), partition=partition)
                trending.restore_dirty(changed)

    # -- recovery and rebalancing ---------------------------------------------------------------

    def recover(self, store: Any, assigned: set[int]) -> Recovered:
        """After a rebalance: drop the states of partitions that are not ``assigned`` (any
        more), rebuild the indexes (trending, open sessions, member clocks) from the states of
        those that are, and heal states that hold events from beyond the skew bound: they are
        written back to ``store`` and returned for the changelog. Store writes are not
        repeated: what a crash lost is re-delivered (see :meth:`commit_floor`)."""
        if self._states is not None:
            self._states.clear()
        limit = self.limit_ms()
        healed: list[ChangelogRecord] = []
        count = 0
        for key, raw in list(store.items()):
            partition = self.partition_of(key)
            if partition not in assigned:
                self._drop_state(store, key)
                continue
            if raw is None:
                continue
            try:
                state = UserState.decode(raw)
            except Exception:  # the next event of the member starts afresh (fold_batch)
                log.exception("state_unreadable", member=key.decode(errors="replace"))
                continue
            if state.heal(limit):
                update = MemberUpdate.of(key, partition, state)
                store[key] = update.state
                healed.append(ChangelogRecord(key, partition, update.state))
                for writer in self.writers:
                    writer.put(key, partition, update.snapshot)
                self.metrics.healed.inc()
                log.warning("state_healed", member=key.decode(errors="replace"))
            self._track(key, partition, state)
            count += 1
        self._count_members()
        return Recovered(count, healed)

    def forget(self, partitions: set[int]) -> None:
        """Drop what is held beside the table for revoked partitions. The table's states stay:
        Faust revokes every partition at a rebalance and does not recover the ones it gets
        back; :meth:`recover` drops the states of partitions that did move away."""
        for writer in self.writers:
            writer.drop(partitions)
        for partition in partitions:
            self.trending.pop(partition, None)
            self.open_sessions.pop(partition, None)
            self.members.pop(partition, None)
        if self._states is not None:
            for key in [k for k in self._states if self.partition_of(k) in partitions]:
                del self._states[key]
        self._count_members()
