"""The JSON answer (checked against the documented model), the Server-Timing header, and the
impression event a served list becomes."""

from __future__ import annotations

from pathlib import Path

from recsys.events.v1 import events_pb2
from recsys_api.schema import Recommendations, answer, server_timing
from recsys_api.served import IMPRESSION_ROW, LastLists, impression_event
from tests.unit.api.test_recommend import World


def test_the_answer_follows_its_documented_model(tmp_path: Path) -> None:
    result = World(tmp_path).ask(k=3)
    body = Recommendations.model_validate(answer(result, 12.5))
    assert [i.id for i in body.items] == ["c0", "c1", "c2"]
    assert [i.title for i in body.items] == ["Title c0", "Title c1", "Title c2"]
    assert body.items[0].genres == ["comedy"]
    assert body.level == 0
    assert body.level_name == "full"
    assert body.variants[0].variant == "b"
    assert body.models == {"candidates": "v0002", "ranker": "v0003", "titles": "v0001"}
    assert body.timing_ms["total"] == 12.5


def test_a_degraded_answer_says_why(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.redis.down = True
    world.features.error = RuntimeError("boom")
    body = Recommendations.model_validate(answer(world.ask(), 3.0))
    assert body.level == 3
    assert body.level_name == "emergency"
    assert [(s.reason, s.level) for s in body.why] == [
        ("features_unavailable", 2),
        ("fallback_unavailable", 3),
    ]
    assert "boom" in body.why[0].detail


def test_server_timing_lists_each_stage_then_the_total() -> None:
    header = server_timing({"features": 1.234, "ranking": 5.0}, 9.87)
    assert header == "features;dur=1.23, ranking;dur=5.00, total;dur=9.87"


def test_a_served_list_becomes_an_impression_event(tmp_path: Path) -> None:
    served = World(tmp_path).ask(k=2).served
    event = impression_event(served)
    assert event.event_type == events_pb2.EVENT_TYPE_IMPRESSION
    assert event.event_id == served.request_id
    assert event.user_id == "u1"
    assert event.device == events_pb2.DEVICE_TV
    assert event.country == "US"
    assert event.occurred_at.ToMilliseconds() == served.served_at_ms
    assert list(event.impression.title_ids) == ["c0", "c1"]
    assert event.impression.row == IMPRESSION_ROW
    assert event.impression.request_id == served.request_id


def test_last_lists_keep_the_most_recent_members_only(tmp_path: Path) -> None:
    items = World(tmp_path).ask(k=2).served.items
    last = LastLists(2)
    for user in ("a", "b", "c"):
        last.remember(user, items)
    assert len(last) == 2
    assert last.get("a") == ()
    assert [i.title_id for i in last.get("c")] == ["c0", "c1"]
    assert LastLists(0).get("c") == ()
