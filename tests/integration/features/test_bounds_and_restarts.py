"""Memory stays bounded by the member TTL, and a restart writes only what may be missing.

On the real Kafka, Redis and Cassandra: members who stop sending events are evicted from the
worker's state (and its trending counts) once they have been silent for the member TTL in event
time, and a restarted worker does not bring them back; a worker restarted after a graceful stop
writes no member to the stores until new events arrive.
"""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from recsys.events.v1 import events_pb2
from tests.features_support import event, last_event_ms, produce, running_worker, wait_for, workload
from tests.integration.features.conftest import FeatureEnv, free_port
from tests.integration.features.runs import metric, ready, scrape, wait_until_done

pytestmark = pytest.mark.integration

TTL_H = 2


def _newcomers(count: int, every: timedelta) -> list[events_pb2.Event]:
    """A new member every ``every`` of event time, each with a play and a pause, never again."""
    out = []
    for i in range(count):
        at = every * i
        user = f"n{i:03d}"
        out.append(event(f"{user}-p", "play", at, user=user, title="tt_drama"))
        out.append(
            event(f"{user}-x", "pause", at + timedelta(minutes=1), user=user, title="tt_drama")
        )
    return out


async def _metrics(port: int, *names: str) -> dict[str, float]:
    text = await scrape(port)
    return {name: metric(text, name) for name in names}


async def test_silent_members_are_evicted_after_the_ttl_and_stay_evicted_after_a_restart(
    feature_env: FeatureEnv, redis: Redis, tmp_path: Path
) -> None:
    fe = feature_env
    # 60 members over 10 h of event time: with a 2 h TTL only the last ~2-3 h stay held.
    events = _newcomers(60, timedelta(minutes=10))
    await produce(fe.settings, fe.events_topic, events)
    port = free_port()
    env = {**fe.env, "RECSYS_METRICS__PORT": str(port), "RECSYS_FEATURES__MEMBER_TTL_S": "7200"}
    names = (
        "recsys_features_members",
        "recsys_features_members_evicted_total",
        "recsys_features_trending_members",
    )
    with running_worker(env, fe.log_path) as proc:
        await wait_until_done(fe, redis, fe.env, last_event_ms(events), name="ttl", proc=proc)

        async def evicted() -> dict[str, float] | None:
            got = await _metrics(port, *names)
            return got if got["recsys_features_members_evicted_total"] > 0 else None

        before = await wait_for(evicted, what="evictions", proc=proc)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)

    held = before["recsys_features_members"]
    # Members are kept between the TTL and the TTL plus an hour (a member's watermark hour must
    # have ended), and the partition's event time is its own newest event: each of the 3
    # partitions holds its members of the last 2-3 h, at 6 new members per hour overall.
    assert held + before["recsys_features_members_evicted_total"] == 60
    assert 6 <= held <= 3 * 6 * (TTL_H + 1)
    # Trending holds only members who played within 24 h of their partition's event time: all
    # of them here (10 h of event time), evicted ones excepted.
    assert before["recsys_features_trending_members"] == held

    # The tombstones keep evicted members out of a restarted worker's state.
    with running_worker(env, fe.log_path) as proc:
        await wait_for(lambda: ready(port), what="the restarted worker", proc=proc)
        after = await _metrics(port, *names)
    assert after["recsys_features_members"] == held
    assert after["recsys_features_members_evicted_total"] == 0


async def test_a_restart_after_a_graceful_stop_writes_no_member_again(
    feature_env: FeatureEnv, redis: Redis, tmp_path: Path
) -> None:
    fe = feature_env
    events = workload(users=40, per_user=20)
    await produce(fe.settings, fe.events_topic, events)
    port = free_port()
    env = {**fe.env, "RECSYS_METRICS__PORT": str(port)}
    written = (
        'recsys_features_freshness_seconds_count{store="redis"}',
        'recsys_features_freshness_seconds_count{store="cassandra"}',
    )
    with running_worker(env, fe.log_path) as proc:
        await wait_until_done(fe, redis, fe.env, last_event_ms(events), name="first", proc=proc)
        proc.send_signal(signal.SIGTERM)  # writes what is pending, commits, leaves
        proc.wait(timeout=60)
    late_arrival = event("new-1", "view", timedelta(hours=20), user="w001")
    with running_worker(env, fe.log_path) as proc:
        await wait_for(lambda: ready(port), what="the restarted worker", proc=proc)
        text = await scrape(port)
        # Nothing was lost, so nothing is written again: before, every member was rewritten.
        assert [metric(text, name) for name in written] == [0.0, 0.0]
        assert metric(text, "recsys_features_members") == 40
        await produce(fe.settings, fe.events_topic, [late_arrival])

        async def one_write_each() -> str | None:
            text = await scrape(port)
            counts = [metric(text, name) for name in written]
            return text if counts == [1.0, 1.0] else None

        await wait_for(one_write_each, what="the new event's writes", proc=proc)
