"""Importers: the real MovieTweetings files, the MovieLens fixtures, the event and genre mapping."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from recsys.catalog import GENRES, ID_PATTERN
from recsys.clients.ingest import IngestClient
from recsys_datagen.dimensions import MEMBER_SCHEMA, TITLE_SCHEMA
from recsys_datagen.importers import (
    ImportFormatError,
    ImportProfile,
    SourceData,
    build_catalog,
    iter_events,
    read_movielens,
    read_movietweetings,
    run_import,
)
from recsys_datagen.importers.genres import GENRE_MAP, map_genres
from recsys_datagen.importers.mapping import (
    ID_NAMESPACE,
    event_uuid,
    limit_ratings,
    rescale_rating,
    rescale_ratings,
)
from recsys_datagen.reporting import import_lines, parse_lines
from recsys_datagen.sender import BatchSender
from tests.stub_ingest import contract_problems, create_stub_app
from tests.unit.datagen.paths import FIXTURES, MOVIETWEETINGS


@pytest.fixture(scope="module")
def tweetings() -> SourceData:
    return read_movietweetings(MOVIETWEETINGS)


def _lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def _stats() -> dict[str, str]:
    """The metric | value table of stats.md."""
    rows = re.findall(
        r"^([A-Z][^|\n]+?)\s*\|\s*(.+?)\s*$", (MOVIETWEETINGS / "stats.md").read_text(), re.M
    )
    return {k.strip(): v.strip() for k, v in rows}


# --- MovieTweetings, the real files -------------------------------------------------------


def test_movietweetings_counts_match_the_files(tweetings: SourceData) -> None:
    assert tweetings.format == "movietweetings"
    assert tweetings.ratings == tweetings.rating_lines == _lines(MOVIETWEETINGS / "ratings.dat")
    assert len(tweetings.movies) == tweetings.movie_lines == _lines(MOVIETWEETINGS / "movies.dat")
    assert tweetings.users == tweetings.users_in_file == _lines(MOVIETWEETINGS / "users.dat")
    assert tweetings.issues.count == 0
    assert tweetings.issues.warning_count == 0
    assert (tweetings.ratings, len(tweetings.movies), tweetings.users) == (100_000, 10_506, 16_554)
    # Every rated movie is in movies.dat, and movie ids keep their leading zeros.
    assert set(tweetings.movie_keys) <= {m.key for m in tweetings.movies}
    assert all(len(m.key) == 7 for m in tweetings.movies)


def test_movietweetings_agrees_with_its_stats(tweetings: SourceData) -> None:
    """stats.md describes the full dataset; this snapshot is its first 100k ratings."""
    stats = _stats()
    assert tweetings.rating.min() == float(stats["Minimum rating value"])
    assert tweetings.rating.max() == float(stats["Maximum rating value"])
    assert tweetings.ratings <= int(stats["Total number of ratings"].replace(",", ""))
    assert tweetings.users <= int(stats["Number of unique users"].replace(",", ""))
    # stats.md gives Belgian local time: CET (UTC+1) on 28 February.
    cet = timezone(timedelta(hours=1))
    first = datetime.fromtimestamp(int(tweetings.timestamp.min()), cet).replace(tzinfo=None)
    assert first == datetime.fromisoformat(stats["Earliest rating time"])


def test_movietweetings_ratings_map_to_events(tweetings: SourceData) -> None:
    events = list(iter_events(tweetings))
    assert len(events) == 3 * tweetings.ratings
    assert Counter(e["event_type"] for e in events) == Counter(
        {"play": 100_000, "complete": 100_000, "rate": 100_000}
    )
    times = [e["occurred_at"] for e in events]
    assert times == sorted(times)  # RFC 3339 in UTC sorts as text
    stars = Counter(e["rating"] for e in events if e["event_type"] == "rate")
    tens = Counter(tweetings.rating.astype(int).tolist())
    assert stars[1] == tens[0] + tens[1] + tens[2]
    assert stars[5] == tens[9] + tens[10]
    assert len({e["event_id"] for e in events}) == len(events)
    now = int(datetime.now(UTC).timestamp() * 1000)
    for e in events[::97]:
        assert not contract_problems(e, now_ms=now), e
        assert ID_PATTERN.match(e["user_id"])
        assert ID_PATTERN.match(e["title_id"])


def test_one_rating_becomes_play_complete_and_rate(tweetings: SourceData) -> None:
    # ratings.dat line 1: 1::1074638::7::1365029107 (a film without the Short genre).
    mine = [
        e
        for e in iter_events(limit_ratings(tweetings, None))
        if e["user_id"] == "mt-u1" and e["title_id"] == "mt-1074638"
    ]
    at = datetime.fromtimestamp(1365029107, UTC)
    expected: list[tuple[str, datetime, dict[str, Any]]] = [
        ("play", at - timedelta(minutes=101), {"position_sec": 0.0}),
        ("complete", at - timedelta(minutes=1), {"position_sec": 6000.0, "watched_sec": 6000.0}),
        ("rate", at, {"rating": 4}),  # ceil(7 / 2)
    ]
    assert len(mine) == 3
    for event, (kind, when, fields) in zip(mine, expected, strict=True):
        assert event["event_type"] == kind
        assert event["occurred_at"] == when.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert {k: event[k] for k in fields} == fields
        assert (event["device"], event["country"]) == ("mobile", "US")
        assert event["event_id"] == str(
            uuid.uuid5(ID_NAMESPACE, f"{kind}|mt-u1|mt-1074638|1365029107")
        )


def test_movietweetings_catalog(tweetings: SourceData) -> None:
    catalog = build_catalog(tweetings, ImportProfile(country="GB"))
    titles, members = catalog.titles, catalog.members
    assert titles.schema.equals(TITLE_SCHEMA)
    assert members.schema.equals(MEMBER_SCHEMA)
    assert (titles.num_rows, members.num_rows) == (10_506, 16_554)
    first = titles.slice(0, 1).to_pylist()[0]
    assert first["title_id"] == "mt-0002844"
    assert first["genres"] == ["crime", "drama"]
    assert first["release_date"] == date(1913, 1, 1)
    assert first["available_countries"] == ["GB"]
    assert sum(titles.column("popularity").to_pylist()) == pytest.approx(1.0)
    shorts = [r for r in titles.to_pylist() if r["name"] == "The Bank"]
    assert shorts[0]["runtime_min"] == 15
    assert shorts[0]["genres"] == ["comedy"]
    assert set(members.column("country").to_pylist()) == {"GB"}
    assert catalog.unmapped_genres == Counter()  # every IMDb genre in the file is in the table


# --- MovieLens fixtures -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "ratings", "lines", "movies", "movie_lines", "users", "users_file", "bad"),
    [
        ("ml-100k", 9, 12, 6, 7, 4, 6, ["u.item:7", "u.data:10", "u.data:11", "u.data:12"]),
        ("ml-1m", 5, 7, 4, 4, 3, 3, ["ratings.dat:6", "ratings.dat:7"]),
        ("ml-latest", 6, 10, 7, 7, 3, None, [f"ratings.csv:{n}" for n in (8, 9, 10, 11)]),
    ],
)
def test_each_movielens_format_is_read(
    layout: str,
    ratings: int,
    lines: int,
    movies: int,
    movie_lines: int,
    users: int,
    users_file: int | None,
    bad: list[str],
) -> None:
    data = read_movielens(FIXTURES / layout)
    assert data.format == layout
    assert data.source == "movielens"
    assert (data.ratings, data.rating_lines) == (ratings, lines)
    assert (len(data.movies), data.movie_lines) == (movies, movie_lines)
    assert (data.users, data.users_in_file) == (users, users_file)
    assert [f"{i.path.name}:{i.line}" for i in data.issues.first] == bad
    report = "\n".join(parse_lines(data))
    for where in bad:
        assert where in report


def test_movielens_details() -> None:
    ml100k = read_movielens(FIXTURES / "ml-100k")
    toy = ml100k.movies[0]
    assert (toy.key, toy.name, toy.release_date) == ("1", "Toy Story", date(1995, 1, 1))
    assert map_genres(toy.genres) == ("animation", "family", "comedy")
    assert map_genres(ml100k.movies[2].genres) == ("crime", "thriller")  # Film-Noir -> crime
    assert ml100k.movies[5].name == "Cité des enfants perdus, La"  # latin-1 decoded
    assert "99" in ml100k.movie_keys  # rated but not in u.item: kept, reported
    assert "rated movies are not in u.item" in "\n".join(parse_lines(ml100k))

    latest = read_movielens(FIXTURES / "ml-latest")
    names = {m.key: m for m in latest.movies}
    assert names["11"].name == "The American President"
    assert names["2571"].name == "The Matrix"
    assert map_genres(names["2571"].genres) == ("action", "sci_fi", "thriller")  # IMAX dropped
    assert names["147250"].release_date is None  # no year in the title
    assert map_genres(names["147250"].genres) == ()
    ml1m = read_movielens(FIXTURES / "ml-1m")
    assert {m.key: m.name for m in ml1m.movies}["73"] == "Misérables, Les"


@pytest.mark.parametrize(
    ("source", "raw", "stars"),
    [
        *(
            ("movietweetings", r, s)
            for r, s in zip(range(11), [1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5], strict=True)
        ),
        *(
            ("movielens", r / 2, s)
            for r, s in zip(range(1, 11), [1, 1, 2, 2, 3, 3, 4, 4, 5, 5], strict=True)
        ),
    ],
)
def test_ratings_are_rescaled_to_one_to_five(source: str, raw: float, stars: int) -> None:
    assert rescale_rating(source, raw) == stars


@pytest.mark.parametrize("source", ["movietweetings", "movielens"])
def test_column_rescaling_agrees_with_the_rule(source: str) -> None:
    raw = np.arange(0, 10.5, 0.5) if source == "movietweetings" else np.arange(0.5, 5.5, 0.5)
    assert rescale_ratings(source, raw).tolist() == [rescale_rating(source, r) for r in raw]


def test_movielens_events_and_ids() -> None:
    data = read_movielens(FIXTURES / "ml-latest")
    events = list(iter_events(data))
    assert [e["occurred_at"] for e in events] == sorted(e["occurred_at"] for e in events)
    assert {e["title_id"] for e in events} == {"ml-1", "ml-3", "ml-11", "ml-170705", "ml-147250"}
    assert {e["user_id"] for e in events} == {"ml-u1", "ml-u2", "ml-u3"}
    assert sorted(e["rating"] for e in events if e["event_type"] == "rate") == [1, 3, 4, 4, 5, 5]
    assert all(e["device"] == "web" and e["app_version"] == "import-ml-latest" for e in events)
    assert [e["event_id"] for e in iter_events(data)] == [e["event_id"] for e in events]
    for name in ("play|ml-u1|ml-1|964982703", "x" * 300, ""):
        assert event_uuid(name) == str(uuid.uuid5(ID_NAMESPACE, name))


def test_limit_keeps_the_earliest_ratings() -> None:
    data = read_movielens(FIXTURES / "ml-latest")
    first_two = limit_ratings(data, 2)
    assert first_two.ratings == 2
    assert sorted(first_two.timestamp.tolist()) == sorted(data.timestamp.tolist())[:2]
    assert limit_ratings(data, 100) is data


def test_imported_members_signed_up_at_their_first_rating() -> None:
    data = read_movielens(FIXTURES / "ml-100k")
    members = build_catalog(data).members.to_pylist()
    by_id = {m["user_id"]: m for m in members}
    assert set(by_id) == {"ml-u1", "ml-u2", "ml-u3", "ml-u4"}
    assert by_id["ml-u1"]["signup_date"] == datetime.fromtimestamp(874965758, UTC).date()
    assert by_id["ml-u1"]["devices"] == ["web"]
    assert by_id["ml-u1"]["genre_preferences"] is None


def test_genre_table() -> None:
    assert {v for v in GENRE_MAP.values() if v} <= set(GENRES)
    unmapped: Counter[str] = Counter()
    assert map_genres(["Children's", "Film-Noir", "IMAX", "Weird", "drama", "Drama"], unmapped) == (
        "family",
        "crime",
        "drama",
    )
    assert unmapped == Counter({"Weird": 1})


# --- bad input ----------------------------------------------------------------------------


def _write(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text, encoding="latin-1")
    return path


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "holds no MovieLens files"),
        ({"u.data": "1\t1\t5\t874965758\n"}, "has u.data but not u.item"),
        (
            {"ratings.csv": "", "movies.csv": "", "u.data": "", "u.item": ""},
            "several MovieLens formats",
        ),
        (
            {"ratings.csv": "user,movie\n1,2\n", "movies.csv": "movieId,title,genres\n"},
            "expected the header",
        ),
        (
            {
                "ratings.dat": "1::1::5::978300760\n",
                "movies.dat": "1::A (1995)::Drama\n",
                "users.dat": "1::1234\n",
            },
            "looks like MovieTweetings",
        ),
    ],
)
def test_movielens_format_errors_are_clear(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    with pytest.raises(ImportFormatError, match=message):
        read_movielens(_write(tmp_path / "data", files))


def test_paths_that_are_not_dataset_directories(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="does not exist"):
        read_movielens(tmp_path / "nope")
    with pytest.raises(ImportFormatError, match="is a file"):
        read_movielens(_write(tmp_path / "d", {"u.data": ""}) / "u.data")
    with pytest.raises(ImportFormatError, match="does not exist"):
        read_movietweetings(tmp_path / "nope")
    with pytest.raises(ImportFormatError, match=r"movies\.dat is missing"):
        read_movietweetings(_write(tmp_path / "mt", {"ratings.dat": "1::0110912::9::1375657563\n"}))
    with pytest.raises(ImportFormatError, match="looks like MovieLens 1M"):
        read_movietweetings(FIXTURES / "ml-1m")


def test_a_file_in_another_format_is_refused_early(tmp_path: Path) -> None:
    garbage = "".join(f"<p>line {i}</p>\n" for i in range(5_000))
    data = _write(tmp_path / "d", {"u.data": garbage, "u.item": "1|A (1995)|" + "|0" * 21 + "\n"})
    with pytest.raises(ImportFormatError, match=r"u.data is not in the expected format: 1000 of"):
        read_movielens(data)


def test_bad_movietweetings_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "mt"
    path.mkdir()
    (path / "movies.dat").write_text("0110912::Pulp Fiction (1994)::Crime|Thriller\nbroken\n")
    (path / "ratings.dat").write_text(
        "14927::0110912::9::1375657563\n"
        "14927::0110912::11::1375657563\n"  # rating above 10
        "14928::0110912::9\n"  # a field short
        "14929::tt0110912::9::1375657563\n"  # not an IMDb number
        "14930::0110912::9::600000000\n"  # 1989: before the ingest's earliest date
        "14931::0110912::9::soon\n"
    )
    data = read_movietweetings(path)
    assert (data.ratings, data.rating_lines, len(data.movies), data.movie_lines) == (1, 6, 1, 2)
    assert [f"{i.path.name}:{i.line}" for i in data.issues.first] == [
        "movies.dat:2",
        "ratings.dat:2",
        "ratings.dat:3",
        "ratings.dat:4",
        "ratings.dat:5",
        "ratings.dat:6",
    ]
    assert data.users_in_file is None


# --- sending through the ingest API -------------------------------------------------------


async def test_an_import_is_sent_in_order_and_counted() -> None:
    data = read_movielens(FIXTURES / "ml-100k")
    app = create_stub_app()
    client = IngestClient(
        "http://stub", api_key="local-dev-key", transport=httpx.ASGITransport(app=app)
    )
    async with client:
        report = await run_import(
            data,
            profile=ImportProfile(),
            sender=BatchSender(client, concurrency=1),
            cassandra=None,
            lake=None,
            batch_size=10,
        )
    assert report.events_built == 27
    assert report.send is not None
    assert (report.send.events, report.send.accepted, report.send.rejected) == (27, 27, 0)
    batches: list[list[dict[str, Any]]] = app.state.stub.batches
    assert [len(b) for b in batches] == [10, 10, 7]
    sent = [e["occurred_at"] for b in batches for e in b]
    assert sent == sorted(sent)
    text = "\n".join(import_lines(report))
    assert "27 built" in text
    assert "accepted 27, rejected 0" in text


def test_only_users_with_a_usable_rating_get_events() -> None:
    data = read_movielens(FIXTURES / "ml-1m")
    ids = np.array([e["user_id"] for e in iter_events(data)])
    assert set(ids.tolist()) == {"ml-u1", "ml-u2", "ml-u3"}
