"""The scripted day every pipeline test starts from, with its hand-computed facts.

Day D = 2026-11-20 (UTC). Runtimes: t1 70 min (4200 s), t2 100 min, t3 50 min, t4 40 min.

- u1 (US) on tv, 19:58-21:11: searches "drama", is shown top_picks [t1, t2, t3], plays t1,
  pauses after 1800 s, resumes, completes after 2280 s more (4080 s, share 0.971), rates it 5.
  The complete event reached bronze twice (a resend beyond the writer's window).
- u1 on mobile, 20:40-20:50, inside the tv session: plays t2, skips after 600 s (overlap 600 s).
- u2 (GB) on tv from 23:50: plays t2, pauses after 1800 s at 00:20 on D+1, previews t3 (skip,
  10 s, no play) at 00:25: one session dated D that crosses midnight; t3 is no playback.
- u2 on tv at 12:00: plays t5 (30 min, released 2026-01-01, more than 6 months before D) and
  completes it at 12:30 (1800 s).
- u3 (US) on web: 10:00 plays t4, completes at 10:40 (2400 s), rates it 3; 11:30 (a new
  session, 50 min later) plays t1 and pauses after 600 s.
- D+1 09:00-09:59, u3 on web again: resumes t1 and pauses after 3400 s: merged with the 600 s of
  D that is 4000 s of 4200 (0.952), so u3 completed t1 by D+1 without a complete event.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from tests.unit.pipelines.scripted import ScriptedLake, at, event, member, title

D = date(2026, 11, 20)
D1 = date(2026, 11, 21)


def _t(hhmm: str, day: date = D) -> datetime:
    return at(f"{day.isoformat()} {hhmm}")


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


COMPLETE_ID = "u1-complete-t1"


def day_d_events() -> list[dict[str, Any]]:
    complete = event(
        "complete",
        "u1",
        _t("21:10"),
        "t1",
        event_id=COMPLETE_ID,
        position_sec=4200.0,
        watched_sec=2280.0,
    )
    return [
        event("search", "u1", _t("19:58"), query="drama "),
        event(
            "impression",
            "u1",
            _t("19:59"),
            event_id="imp-1",
            title_ids=["t1", "t2", "t3"],
            row="top_picks",
            position=0,
            request_id="",
        ),
        event("play", "u1", _t("20:00"), "t1", position_sec=0.0),
        event("pause", "u1", _t("20:30"), "t1", position_sec=1800.0, watched_sec=1800.0),
        event("play", "u1", _t("20:32"), "t1", position_sec=1800.0),
        complete,
        dict(complete),  # the resend: same event_id, a later offset
        event("rate", "u1", _t("21:11"), "t1", rating=5),
        event("play", "u1", _t("20:40"), "t2", device="mobile", position_sec=0.0),
        event(
            "skip",
            "u1",
            _t("20:50"),
            "t2",
            device="mobile",
            position_sec=600.0,
            watched_sec=600.0,
        ),
        event("play", "u2", _t("23:50"), "t2", country="GB", position_sec=0.0),
        event(
            "pause",
            "u2",
            _t("00:20", D1),
            "t2",
            country="GB",
            position_sec=1800.0,
            watched_sec=1800.0,
        ),
        event(
            "skip",
            "u2",
            _t("00:25", D1),
            "t3",
            country="GB",
            position_sec=10.0,
            watched_sec=10.0,
        ),
        event("play", "u2", _t("12:00"), "t5", country="GB", position_sec=0.0),
        event(
            "complete",
            "u2",
            _t("12:30"),
            "t5",
            country="GB",
            position_sec=1800.0,
            watched_sec=1800.0,
        ),
        event("play", "u3", _t("10:00"), "t4", device="web", position_sec=0.0),
        event(
            "complete",
            "u3",
            _t("10:40"),
            "t4",
            device="web",
            position_sec=2400.0,
            watched_sec=2400.0,
        ),
        event("rate", "u3", _t("10:41"), "t4", device="web", rating=3),
        event("play", "u3", _t("11:30"), "t1", device="web", position_sec=0.0),
        event(
            "pause", "u3", _t("11:40"), "t1", device="web", position_sec=600.0, watched_sec=600.0
        ),
    ]


def day_d1_events() -> list[dict[str, Any]]:
    return [
        event("play", "u3", _t("09:00", D1), "t1", device="web", position_sec=600.0),
        event(
            "pause",
            "u3",
            _t("09:59", D1),
            "t1",
            device="web",
            position_sec=4000.0,
            watched_sec=3400.0,
        ),
    ]


def catalog(lake: ScriptedLake) -> None:
    lake.titles(
        title("t1", runtime_min=70, genres=["drama"], release=date(2026, 9, 1), director="Ann"),
        title(
            "t2",
            runtime_min=100,
            genres=["comedy", "drama"],
            release=date(2026, 10, 1),
            director="Bo",
            language="es",
        ),
        title("t3", runtime_min=50, genres=["action"], release=date(2020, 1, 1)),
        title("t4", runtime_min=40, genres=["horror"], release=date(2026, 11, 1), director="Ann"),
        title("t5", runtime_min=30, genres=["comedy"], release=date(2026, 1, 1), language="fr"),
    )
    lake.members(
        member("u1", country="US", plan="premium"),
        member("u2", country="GB", plan="basic"),
        member("u3", country="US"),
    )
