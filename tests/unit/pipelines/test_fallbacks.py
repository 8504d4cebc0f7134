"""Fallback lists from a scripted lake, against lists computed by hand.

Engagement per member, title and country: 1 for a play or a rating, +1 if a playback completed,
+ (latest rating - 3) / 2. Lists rank by the country's engagement, then global engagement, then
the catalog prior (popularity), then title id; a country lists only titles available there.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from recsys.models import FALLBACKS_FILE, FallbackLists, ModelRegistry
from recsys.models.fallbacks import FallbackFormatError
from recsys_pipelines.errors import PipelineError
from recsys_pipelines.fallbacks import compute_fallbacks, publish_fallbacks
from recsys_pipelines.silver import latest_event_day, run_silver
from tests.unit.pipelines.scripted import ScriptedLake, at, event, title

D = date(2026, 11, 20)


def _t(hhmm: str, day: date = D) -> datetime:
    return at(f"{day.isoformat()} {hhmm}")


def watched(
    user: str, title_id: str, start: datetime, seconds: float, *, done: bool, country: str = "US"
) -> list[dict[str, object]]:
    """A play, then a complete or a pause ``seconds`` later."""
    end = "complete" if done else "pause"
    return [
        event("play", user, start, title_id, country=country, position_sec=0.0),
        event(
            end,
            user,
            start + timedelta(seconds=seconds),
            title_id,
            country=country,
            position_sec=seconds,
            watched_sec=seconds,
        ),
    ]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> ScriptedLake:
    lake = ScriptedLake.create(tmp_path_factory.mktemp("fallbacks"))
    lake.titles(
        title("t1", genres=["drama"], countries=["US", "GB"], popularity=0.01),
        title("t2", genres=["comedy"], countries=["US", "GB"], popularity=0.05),
        title("t3", genres=["drama", "comedy"], countries=["US"], popularity=0.02),
        title("t4", genres=["action"], countries=["GB"], popularity=0.03),
        title("t5", genres=["drama"], countries=["US", "GB"], popularity=0.04),
    )
    lake.events(
        # u1 (US): completes t1 and rates it 5 -> 1 + 1 + 1 = 3; a second viewing the day
        # before adds nothing (once per member, title and country).
        *watched("u1", "t1", _t("20:00"), 4000, done=True),
        event("rate", "u1", _t("21:10"), "t1", rating=5),
        *watched("u1", "t1", _t("20:00", D - timedelta(days=1)), 4000, done=True),
        # u2 (US): t1 abandoned -> 1; t3 completed -> 2.
        *watched("u2", "t1", _t("10:00"), 600, done=False),
        *watched("u2", "t3", _t("12:00"), 3000, done=True),
        # u3 (GB): completes t2 and rates it 2 -> 1 + 1 - 0.5 = 1.5.
        *watched("u3", "t2", _t("18:00"), 5000, done=True, country="GB"),
        event("rate", "u3", _t("19:30"), "t2", country="GB", rating=2),
        # u4 (GB): t4 abandoned -> 1; t1 abandoned -> 1.
        *watched("u4", "t4", _t("08:00"), 300, done=False, country="GB"),
        *watched("u4", "t1", _t("09:00"), 300, done=False, country="GB"),
        # u5 (US): rates t2 4 without playing it -> 1 + 0.5 = 1.5.
        event("rate", "u5", _t("15:00"), "t2", rating=4),
        # u6 (US): completed t5 40 days earlier: outside the 30-day window.
        *watched("u6", "t5", _t("20:00", D - timedelta(days=40)), 3000, done=True),
    )
    run_silver(lake.catalog, lake.lake, lake.settings)
    return lake


def compute(lake: ScriptedLake, as_of: date = D, top_n: int = 10) -> FallbackLists:
    return compute_fallbacks(
        lake.catalog, lake.lake, lake.settings, as_of, window_days=30, top_n=top_n
    )


def test_the_latest_event_day_is_the_datas_own(lake: ScriptedLake) -> None:
    assert latest_event_day(lake.catalog, lake.lake) == D


def test_lists_computed_by_hand(lake: ScriptedLake) -> None:
    lists = compute(lake)
    # Global: t1 3+1+1 = 5, t2 1.5+1.5 = 3, t3 2, t4 1, t5 0 (its play is outside the window).
    assert lists.global_titles == ("t1", "t2", "t3", "t4", "t5")
    assert dict(lists.countries) == {
        # US: t1 4, t3 2, t2 1.5, t5 0; t4 is not available in the US.
        "US": ("t1", "t3", "t2", "t5"),
        # GB: t2 1.5, then t1 and t4 tie at 1 (global breaks it: 5 > 1), t5 0; no t3 in GB.
        "GB": ("t2", "t1", "t4", "t5"),
    }
    assert {c: dict(g) for c, g in lists.country_genres.items()} == {
        "US": {"drama": ("t1", "t3", "t5"), "comedy": ("t3", "t2")},
        "GB": {"drama": ("t1", "t5"), "comedy": ("t2",), "action": ("t4",)},
    }
    assert lists.for_country("GB", "drama") == ("t1", "t5")
    assert lists.for_country("FR") == lists.global_titles  # no list: the global one
    assert lists.for_country("FR", "drama") == ()


def test_top_n_cuts_every_list(lake: ScriptedLake) -> None:
    lists = compute(lake, top_n=2)
    assert lists.global_titles == ("t1", "t2")
    assert dict(lists.countries) == {"US": ("t1", "t3"), "GB": ("t2", "t1")}
    assert lists.country_genres["US"]["drama"] == ("t1", "t3")


def test_the_window_moves_with_as_of(lake: ScriptedLake) -> None:
    # As of D - 1 only u1's earlier viewing of t1 counts (2), t5 is still outside.
    lists = compute(lake, as_of=D - timedelta(days=1))
    assert lists.global_titles[0] == "t1"
    assert lists.countries["US"][:1] == ("t1",)
    # Then the catalog prior orders the titles nobody engaged with: t2 .05, t5 .04, t3 .02.
    assert lists.countries["US"][1:] == ("t2", "t5", "t3")


def test_an_empty_window_is_a_one_line_error(lake: ScriptedLake) -> None:
    with pytest.raises(PipelineError, match=r"^no plays or ratings in silver from 2026-05-0"):
        compute(lake, as_of=date(2026, 6, 1))


def test_the_published_file_round_trips(lake: ScriptedLake, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    lists = compute(lake)
    version = publish_fallbacks(registry, lists, {"as_of": D.isoformat()})
    found = registry.get("fallbacks", version)
    assert FallbackLists.from_json(found.file(FALLBACKS_FILE).read_bytes()) == lists
    assert found.manifest.params == {"window_days": 30, "top_n": 10}
    assert found.manifest.training_data == {"as_of": "2026-11-20"}


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"[]",
        b'{"format": 2}',
        b'{"format": 1, "as_of": "2026-11-20", "window_days": 30, "top_n": 1, "global": '
        b'["t1", "t2"], "countries": {}, "country_genres": {}}',
        b'{"format": 1, "as_of": "2026-11-20", "window_days": 30, "top_n": 5, "global": '
        b'["t1"], "countries": {"usa": []}, "country_genres": {}}',
        b'{"format": 1, "as_of": "2026-11-20", "window_days": 30, "top_n": 5, "global": '
        b'["t1", "t1"], "countries": {}, "country_genres": {}}',
    ],
)
def test_a_bad_fallbacks_file_is_one_line(text: bytes) -> None:
    with pytest.raises(FallbackFormatError) as excinfo:
        FallbackLists.from_json(text)
    assert "\n" not in str(excinfo.value)
    assert str(excinfo.value).startswith("not a fallbacks file: ")
