"""Per-country trending counts: distinct members per title over sliding event-time windows."""

from __future__ import annotations

import random

from recsys.features.state import UserState
from recsys.features.titles import DictCatalog, TitleInfo
from recsys_features.fold import Record, decoding, fold_batch
from recsys_features.trending import MINUTE_MS, PartitionTrending, top_titles
from tests.features_support import T0, workload

H1, H24 = "trending_titles_1h", "trending_titles_24h"
BASE = int(T0.timestamp() * 1000)  # 10:00 UTC, the start of a minute, hour and 15 min bucket
CATALOG = DictCatalog({"tt_drama": TitleInfo(("drama",), 6000.0)})


def at(minutes: float) -> int:
    return BASE + int(minutes * MINUTE_MS)


def test_counts_distinct_members_per_country() -> None:
    t = PartitionTrending()
    t.update(b"a", country="US", plays=[("x", at(0)), ("y", at(1))], watermark_ms=at(1))
    t.update(b"b", country="US", plays=[("x", at(2))], watermark_ms=at(2))
    t.update(b"c", country="GB", plays=[("x", at(3))], watermark_ms=at(3))
    assert t.counts(H1, "US") == {"x": 2, "y": 1}
    assert t.counts(H1, "GB") == {"x": 1}
    # A member's new state replaces its old contribution: a replay moves the play, no double count.
    t.update(b"a", country="US", plays=[("x", at(4)), ("y", at(1))], watermark_ms=at(4))
    assert t.counts(H1, "US") == {"x": 2, "y": 1}
    # A member who moves country takes their plays along.
    t.update(b"b", country="GB", plays=[("x", at(2))], watermark_ms=at(5))
    assert t.counts(H1, "US") == {"x": 1, "y": 1}
    assert t.counts(H1, "GB") == {"x": 2}


def test_windows_slide_with_the_partition_watermark_in_buckets() -> None:
    t = PartitionTrending()
    t.update(b"a", country="US", plays=[("x", at(0))], watermark_ms=at(0))
    t.update(b"b", country="US", plays=[("y", at(30))], watermark_ms=at(30))
    # At 11:00 the 1 h window is the minute buckets 10:01 .. 11:00: 10:00 has left it.
    t.update(b"c", country="US", plays=[("z", at(60))], watermark_ms=at(60))
    assert t.counts(H1, "US") == {"y": 1, "z": 1}
    assert t.counts(H24, "US") == {"x": 1, "y": 1, "z": 1}
    # A play older than the window when it arrives is not counted.
    t.update(b"d", country="US", plays=[("x", at(-5))], watermark_ms=at(-5))
    assert t.counts(H1, "US") == {"y": 1, "z": 1}
    # 24 h and 15 min later (a new 15 min bucket), the 10:00 bucket has left the 24 h window.
    t.update(b"e", country="US", plays=[], watermark_ms=at(24 * 60 + 15))
    assert t.counts(H24, "US") == {"y": 1, "z": 1}


def test_take_dirty_reports_each_changed_country_once_with_current_counts() -> None:
    t = PartitionTrending()
    t.update(b"a", country="US", plays=[("x", at(0))], watermark_ms=at(0))
    assert t.take_dirty() == {(H1, "US"): {"x": 1}, (H24, "US"): {"x": 1}}
    assert t.take_dirty() == {}
    t.update(b"b", country="GB", plays=[], watermark_ms=at(61))  # x leaves the 1 h window
    assert t.take_dirty() == {(H1, "US"): {}}


def test_incremental_counts_equal_a_rebuild_from_the_final_states() -> None:
    events = workload(users=40, per_user=60)
    for ev in events:
        ev.country = "GB" if int(ev.user_id[1:]) % 3 == 0 else "US"
    incremental = PartitionTrending()
    store: dict[bytes, bytes] = {}
    for start in range(0, len(events), 37):
        records = [Record(0, ev.SerializeToString()) for ev in events[start : start + 37]]
        result = fold_batch(records, load=decoding(store.get), catalog=CATALOG, grace_ms=300_000)
        for u in result.updates:
            store[u.key] = u.state
            incremental.update(
                u.key, country=u.country, plays=u.plays, watermark_ms=u.snapshot.event_time_ms
            )
    rebuilt = PartitionTrending()
    items = list(store.items())
    random.Random(3).shuffle(items)
    for key, raw in items:
        state = UserState.decode(raw)
        plays = [(title, ms) for ms, title in state.watched]
        rebuilt.update(key, country=state.country, plays=plays, watermark_ms=state.watermark_ms)
    for feature in (H1, H24):
        for country in ("US", "GB"):
            assert incremental.counts(feature, country) == rebuilt.counts(feature, country)
    assert incremental.counts(H24, "US")  # the comparison was not between two empty results


def test_top_titles_by_count_then_title() -> None:
    assert top_titles([("b", 2), ("a", 2), ("c", 5), ("d", 0)], 3) == ["c", "a", "b"]
