"""The stream job's per-member state and feature definitions, without Kafka (docs/features.md)."""

from __future__ import annotations

from typing import Any

import orjson

from recsys.features.state import WATCHED_MAX, Applied, UserState
from tests.features_support import CATALOG, EXPECTED_U1, T0, event, minutes, scripted_u1

GRACE = 5 * 60 * 1000


def run(*events: Any) -> tuple[UserState, list[Applied]]:
    state = UserState()
    results = [state.apply(ev, CATALOG, grace_ms=GRACE).result for ev in events]
    state.prune(grace_ms=GRACE)
    return state, results


def test_scripted_sequence_matches_the_hand_computed_features() -> None:
    state, results = run(*scripted_u1())
    assert results.count(Applied.DUPLICATE) == 1
    assert results.count(Applied.LATE) == 1
    assert state.features() == EXPECTED_U1


def test_duplicate_event_ids_are_dropped() -> None:
    play = event("a", "play", minutes(0), title="tt_drama")
    state, results = run(play, play, play)
    assert results == [Applied.APPLIED, Applied.DUPLICATE, Applied.DUPLICATE]
    assert state.days == {(T0.timestamp() * 1000) // 86_400_000: (1, 0)}


def test_event_ids_are_forgotten_after_the_dedup_window() -> None:
    state, _ = run(
        event("a", "play", minutes(0), title="tt_drama"),
        event("b", "view", minutes(61), title="tt_drama"),
    )
    assert "a" not in state.seen
    assert "b" in state.seen


def test_grace_period_boundary() -> None:
    state, results = run(
        event("a", "view", minutes(10)),
        event("in", "search", minutes(5), query="on the edge"),  # exactly grace behind: applied
        event("out", "search", minutes(4.99), query="too late"),  # beyond: late
    )
    assert results == [Applied.APPLIED, Applied.APPLIED, Applied.LATE]
    assert state.features()["search_terms_last_5min"] == []  # 10:05 is not in (10:05, 10:10]


def test_sessions_split_after_more_than_30_minutes_of_inactivity() -> None:
    state = UserState()
    closed = [
        state.apply(ev, CATALOG, grace_ms=GRACE).closed_session
        for ev in (
            event("a", "view", minutes(0)),
            event("b", "view", minutes(20)),
            event("c", "view", minutes(50)),  # exactly 30 min: same session
            event("d", "view", minutes(80.01)),  # just over: a new session
        )
    ]
    assert closed[:3] == [None, None, None]
    summary = closed[3]
    assert summary is not None
    assert (summary.duration_sec, summary.event_count) == (50 * 60, 3)
    assert summary.session_id == f"u1:{int(T0.timestamp() * 1000)}"
    assert state.features()["session_duration_sec"] == 0


def test_out_of_order_event_inside_grace_extends_the_session_backwards() -> None:
    state, _ = run(event("a", "view", minutes(10)), event("b", "view", minutes(6)))
    assert state.features()["session_duration_sec"] == 240


def test_abandoned_means_a_played_title_left_before_a_quarter_of_its_runtime() -> None:
    state, _ = run(
        event("p1", "play", minutes(0), title="tt_action"),
        event("s1", "skip", minutes(1), title="tt_action", position=899),  # < 900: abandoned
        event("p2", "play", minutes(2), title="tt_drama"),
        event("s2", "skip", minutes(3), title="tt_drama", position=1500),  # = 25 %: not
        event("s3", "skip", minutes(4), title="tt_comedy", position=5),  # preview, no play: not
        event("p4", "play", minutes(5), title="tt_unknown"),
        event("s4", "skip", minutes(6), title="tt_unknown", position=5),  # no runtime: not
        event("p5", "play", minutes(7), title="tt_doc"),
        event("c5", "complete", minutes(8), title="tt_doc", position=5400),
        event("s5", "skip", minutes(9), title="tt_doc", position=5),  # play already ended: not
    )
    assert state.features()["plays_abandoned_last_1hr"] == 1


def test_a_play_left_open_for_more_than_a_day_is_forgotten_even_before_pruning() -> None:
    state, _ = run(
        event("p1", "play", minutes(0), title="tt_action"),
        event("v", "view", minutes(24 * 60 + 1)),  # the play is now more than a day old
        event("s1", "skip", minutes(24 * 60 + 2), title="tt_action", position=10),
    )
    assert state.features()["plays_abandoned_last_1hr"] == 0


def test_abandons_count_in_the_utc_hour_of_the_member_latest_event() -> None:
    state, _ = run(
        event("p1", "play", minutes(50), title="tt_action"),
        event("s1", "skip", minutes(55), title="tt_action", position=10),
        event("v", "view", minutes(61)),  # 11:01: a new hour
    )
    assert state.features()["plays_abandoned_last_1hr"] == 0


def test_completion_rate_is_per_utc_day_and_capped() -> None:
    # 10:00 + 14 h = 00:00 the next day.
    state, _ = run(
        event("p1", "play", minutes(0), title="tt_doc"),
        event("p2", "play", minutes(10), title="tt_drama"),
        event("c1", "complete", minutes(20), title="tt_doc"),
    )
    assert state.features()["content_completion_rate_today"] == 0.5
    state, _ = run(
        event("p1", "play", minutes(13 * 60 + 50), title="tt_doc"),
        event("c1", "complete", minutes(14 * 60 + 5), title="tt_doc"),
    )
    assert state.features()["content_completion_rate_today"] == 0.0  # no plays today


def test_current_genre_by_watch_time_with_ties_to_the_most_recent() -> None:
    state, _ = run(
        event("p1", "play", minutes(0), title="tt_action"),
        event("p2", "play", minutes(1), title="tt_comedy"),
    )
    assert state.features()["current_genre_last_30min"] == "comedy"  # 0 s each: latest wins
    state, _ = run(
        event("p1", "pause", minutes(0), title="tt_action", watched=300),
        event("p2", "pause", minutes(1), title="tt_comedy", watched=100),
        event("p3", "play", minutes(2), title="tt_unknown"),  # no genre: ignored
    )
    assert state.features()["current_genre_last_30min"] == "action"


def test_device_follows_the_latest_event_time_not_arrival() -> None:
    state, _ = run(
        event("a", "view", minutes(10), device="tv"),
        event("b", "view", minutes(8), device="mobile"),  # in grace, but older
    )
    assert state.features()["current_device_type"] == "tv"


def test_search_terms_newest_first_distinct_within_five_minutes() -> None:
    state, _ = run(
        event("a", "search", minutes(0), query="old"),
        event("b", "search", minutes(6), query="cats"),
        event("c", "search", minutes(7), query="dogs"),
        event("d", "search", minutes(8), query="cats"),
    )
    assert state.features()["search_terms_last_5min"] == ["cats", "dogs"]


def test_recently_watched_is_distinct_newest_first_and_capped_at_the_registry_max() -> None:
    assert WATCHED_MAX == 200
    plays = [event(f"p{i}", "play", minutes(i * 0.01), title=f"t{i}") for i in range(210)]
    state, _ = run(*plays, event("again", "play", minutes(7), title="t10"))
    watched = state.features()["recently_watched_title_ids"]
    assert len(watched) == 200
    assert watched[:3] == ["t10", "t209", "t208"]
    assert watched.count("t10") == 1


def test_encode_decode_round_trip_keeps_every_value() -> None:
    state, _ = run(*scripted_u1())
    copy = UserState.decode(state.encode())
    assert copy == state
    assert copy.features() == state.features()


def test_an_idle_closed_session_is_not_summarised_again_by_the_next_event() -> None:
    state, _ = run(event("a", "view", minutes(0)), event("b", "view", minutes(10)))
    idle = state.close_idle("u1")
    assert idle is not None
    assert (idle.duration_sec, idle.event_count) == (600, 2)
    assert state.close_idle("u1") is None  # once
    assert state.idle_candidate_ms is None
    nxt = state.apply(event("c", "view", minutes(90)), CATALOG, grace_ms=GRACE)
    assert nxt.closed_session is None
    assert state.idle_candidate_ms == int((T0 + minutes(90)).timestamp() * 1000)


def test_an_idle_closed_session_that_grows_is_summarised_again_with_the_same_id() -> None:
    state, _ = run(event("a", "view", minutes(0)), event("b", "view", minutes(10)))
    first = state.close_idle("u1")
    state.apply(event("c", "view", minutes(20)), CATALOG, grace_ms=GRACE)  # within the gap
    again = state.apply(event("d", "view", minutes(90)), CATALOG, grace_ms=GRACE).closed_session
    assert first is not None
    assert again is not None
    assert again.session_id == first.session_id
    assert (again.duration_sec, again.event_count) == (1200, 3)


def test_states_encoded_before_the_emitted_flag_still_decode() -> None:
    state, _ = run(event("a", "view", minutes(0)))
    state.close_idle("u1")
    encoded = orjson.loads(state.encode())
    assert encoded["ss"][3] is True
    encoded["ss"] = encoded["ss"][:3]
    assert UserState.decode(orjson.dumps(encoded)).session_emitted is False
