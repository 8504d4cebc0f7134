"""MovieTweetings (Dooms et al., CrowdRec 2013): IMDb ratings tweeted by their authors.

Files in the dataset directory, ``::``-separated, UTF-8:

- ``ratings.dat``: ``user_id::movie_id::rating::unix_timestamp``, rating an integer 0-10;
- ``movies.dat``: ``movie_id::title (year)::Genre1|Genre2|...`` (IMDb genres, possibly none);
  movie ids are IMDb numbers with their leading zeros, kept as text;
- ``users.dat``: ``user_id::twitter_id`` (only counted: the Twitter id is not needed, so it is
  not stored).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from recsys_datagen.importers.source import (
    ImportFormatError,
    IssueLog,
    Movie,
    RatingsBuilder,
    SourceData,
    read_lines,
    split_movie_line,
    split_title,
    timestamp_problem,
)

__all__ = ["read_movietweetings"]

_SEPARATOR = "::"
_UTF8 = "utf-8"


def read_movietweetings(path: Path, *, now: datetime | None = None) -> SourceData:
    if not path.exists():
        raise ImportFormatError(f"{path} does not exist")
    if not path.is_dir():
        raise ImportFormatError(
            f"{path} is a file: pass the MovieTweetings directory (ratings.dat, movies.dat)"
        )
    ratings_file, movies_file = path / "ratings.dat", path / "movies.dat"
    for required in (ratings_file, movies_file):
        if not required.is_file():
            raise ImportFormatError(
                f"{required} is missing (MovieTweetings needs ratings.dat and movies.dat)"
            )
    _refuse_movielens(path)
    now = now or datetime.now(UTC)
    issues = IssueLog()
    movies = _movies(movies_file, issues)
    ratings = RatingsBuilder()
    _ratings(ratings_file, ratings, issues, now)
    users_file = path / "users.dat"
    users_in_file = (
        sum(1 for _ in read_lines(users_file, _UTF8, IssueLog())) if users_file.is_file() else None
    )
    return SourceData.collect(
        source="movietweetings",
        format="movietweetings",
        path=path,
        movies=movies,
        ratings=ratings,
        ratings_file=ratings_file,
        movies_file=movies_file,
        users_in_file=users_in_file,
        issues=issues,
    )


def _movies(path: Path, issues: IssueLog) -> list[Movie]:
    movies: list[Movie] = []
    for number, text in read_lines(path, _UTF8, issues):
        parts = split_movie_line(text)
        if parts is None:
            issues.add(path, number, "expected movie_id::title (year)::genres", "wrong field count")
            continue
        key, title, genres = parts
        if not key.isdigit():
            issues.add(path, number, f"movie id {key!r} is not an IMDb number", "bad id")
            continue
        name, year = split_title(title)
        movies.append(
            Movie(
                key,
                name,
                datetime(year, 1, 1, tzinfo=UTC).date() if year and 1870 <= year <= 2100 else None,
                tuple(g.strip() for g in genres.split("|") if g.strip()),
            )
        )
    return movies


def _ratings(path: Path, out: RatingsBuilder, issues: IssueLog, now: datetime) -> None:
    for number, text in read_lines(path, _UTF8, issues):
        parts = text.split(_SEPARATOR)
        if len(parts) != 4:
            issues.add(
                path,
                number,
                f"expected 4 fields separated by '::', got {len(parts)}",
                "wrong field count",
            )
            continue
        user, movie, rating, timestamp = (p.strip() for p in parts)
        if not user.isdigit() or not movie.isdigit():
            issues.add(path, number, f"bad user or movie id {user!r} / {movie!r}", "bad id")
            continue
        if not rating.isdigit() or not 0 <= int(rating) <= 10:
            issues.add(
                path,
                number,
                f"rating {rating!r} is not an integer from 0 to 10",
                "rating out of range",
            )
            continue
        if not timestamp.isdigit():
            issues.add(
                path,
                number,
                f"timestamp {timestamp!r} is not a unix time in seconds",
                "not a number",
            )
            continue
        problem = timestamp_problem(int(timestamp), now)
        if problem:
            issues.add(path, number, problem, "timestamp out of range")
            continue
        out.add(int(user), movie, float(rating), int(timestamp))


def _refuse_movielens(path: Path) -> None:
    """MovieLens 1M uses the same file names; its users.dat has five fields per line."""
    users = path / "users.dat"
    if users.is_file():
        with users.open("r", encoding=_UTF8, errors="replace") as handle:
            first = handle.readline().strip()
        if first and len(first.split(_SEPARATOR)) == 5:
            raise ImportFormatError(
                f"{path} looks like MovieLens 1M (users.dat has five fields), not MovieTweetings: "
                "use `recsys import movielens`"
            )
