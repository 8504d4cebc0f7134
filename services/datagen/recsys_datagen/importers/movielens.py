"""MovieLens datasets, in the three layouts GroupLens publishes, detected from the files present.

- ml-100k: ``u.data`` (tab-separated: user item rating timestamp) and ``u.item`` (pipe-separated,
  latin-1: id, title, release date, video release date, IMDb URL, 19 genre flags); ``u.user``
  is counted if present.
- ml-1m: ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``) and ``movies.dat``
  (``MovieID::Title (year)::Genre|Genre``), latin-1; ``users.dat`` is counted if present.
- ml-latest (also ml-latest-small, ml-20m, ml-25m): ``ratings.csv`` (header
  ``userId,movieId,rating,timestamp``, ratings in halves from 0.5) and ``movies.csv``
  (``movieId,title,genres``, genres pipe-separated, titles quoted when they hold commas), UTF-8.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, date, datetime
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

__all__ = ["FORMATS", "ML_100K_GENRES", "detect_format", "read_movielens"]

FORMATS: dict[str, tuple[str, str]] = {
    "ml-100k": ("u.data", "u.item"),
    "ml-latest": ("ratings.csv", "movies.csv"),
    "ml-1m": ("ratings.dat", "movies.dat"),
}
# u.item's 19 genre flags, in order (u.genre of ml-100k).
ML_100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
_LATIN1 = "latin-1"


def detect_format(path: Path) -> str:
    """The MovieLens format of the directory ``path``, from the pair of files it holds."""
    if not path.exists():
        raise ImportFormatError(f"{path} does not exist")
    if not path.is_dir():
        raise ImportFormatError(
            f"{path} is a file: pass the directory that holds the MovieLens files "
            "(u.data + u.item, ratings.dat + movies.dat, or ratings.csv + movies.csv)"
        )
    found = [name for name, files in FORMATS.items() if all((path / f).is_file() for f in files)]
    if len(found) > 1:
        raise ImportFormatError(f"{path} holds files of several MovieLens formats: {found}")
    if found:
        return found[0]
    for name, (ratings, movies) in FORMATS.items():
        present = [f for f in (ratings, movies) if (path / f).is_file()]
        if present:
            missing = next(f for f in (ratings, movies) if f not in present)
            raise ImportFormatError(
                f"{path} has {present[0]} but not {missing} ({name} needs both)"
            )
    listing = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "nothing"
    raise ImportFormatError(
        f"{path} holds no MovieLens files (u.data + u.item, ratings.dat + movies.dat, or "
        f"ratings.csv + movies.csv); found: {listing}"
    )


def read_movielens(path: Path, *, now: datetime | None = None) -> SourceData:
    fmt = detect_format(path)
    now = now or datetime.now(UTC)
    issues = IssueLog()
    ratings = RatingsBuilder()
    ratings_name, movies_name = FORMATS[fmt]
    ratings_file, movies_file = path / ratings_name, path / movies_name
    if fmt == "ml-100k":
        movies = _ml100k_movies(movies_file, issues)
        rows = _split_lines(ratings_file, "\t", 4, issues)
        users_in_file = _count_lines(path / "u.user")
    elif fmt == "ml-1m":
        _refuse_movietweetings(path)
        movies = _dat_movies(movies_file, issues)
        rows = _split_lines(ratings_file, "::", 4, issues)
        users_in_file = _count_lines(path / "users.dat")
    else:
        movies = _csv_movies(movies_file, issues)
        rows = _csv_rows(ratings_file, ["userId", "movieId", "rating", "timestamp"], issues)
        users_in_file = None
    _read_ratings(rows, ratings_file, ratings, issues, now)
    return SourceData.collect(
        source="movielens",
        format=fmt,
        path=path,
        movies=movies,
        ratings=ratings,
        ratings_file=ratings_file,
        movies_file=movies_file,
        users_in_file=users_in_file,
        issues=issues,
    )


Row = tuple[int, list[str]]


def _split_lines(path: Path, separator: str, fields: int, issues: IssueLog) -> Iterator[Row]:
    for number, text in read_lines(path, _LATIN1, issues):
        parts = text.split(separator)
        if len(parts) != fields:
            issues.add(
                path,
                number,
                f"expected {fields} fields separated by {separator!r}, got {len(parts)}",
                "wrong field count",
            )
            continue
        yield number, parts


def _csv_rows(path: Path, header: list[str], issues: IssueLog) -> Iterator[Row]:
    if not path.is_file():
        raise ImportFormatError(f"{path} is missing")
    with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        first = next(reader, None)
        if first is None or [c.strip() for c in first] != header:
            raise ImportFormatError(f"{path}: expected the header {','.join(header)}, got {first}")
        seen = 0
        for row in reader:
            number = reader.line_num
            if not row or not any(c.strip() for c in row):
                continue
            if any("\ufffd" in c for c in row):
                issues.warn(path, number, "bytes that are not utf-8 were replaced")
            if len(row) != len(header):
                issues.add(
                    path,
                    number,
                    f"expected {len(header)} columns, got {len(row)}",
                    "wrong field count",
                )
            else:
                yield number, row
            seen += 1
            issues.check_format(path, seen)


def _read_ratings(
    rows: Iterator[Row], path: Path, out: RatingsBuilder, issues: IssueLog, now: datetime
) -> None:
    for number, (user, movie, rating, timestamp) in rows:
        try:
            user_id, stars, ts = int(user), float(rating), int(timestamp)
        except ValueError:
            issues.add(
                path,
                number,
                f"not a number among user {user!r}, rating {rating!r}, timestamp {timestamp!r}",
                "not a number",
            )
            continue
        movie = movie.strip()
        if not movie.isdigit() or user_id < 0:
            issues.add(path, number, f"bad user or movie id {user!r} / {movie!r}", "bad id")
            continue
        if not (0.5 <= stars <= 5.0 and (stars * 2).is_integer()):
            issues.add(
                path,
                number,
                f"rating {rating!r} is not one of 0.5, 1.0, ... 5.0",
                "rating out of range",
            )
            continue
        problem = timestamp_problem(ts, now)
        if problem:
            issues.add(path, number, problem, "timestamp out of range")
            continue
        out.add(user_id, movie, stars, ts)


def _ml100k_movies(path: Path, issues: IssueLog) -> list[Movie]:
    movies: list[Movie] = []
    for number, parts in _split_lines(path, "|", 5 + len(ML_100K_GENRES), issues):
        key, title, released = parts[0].strip(), parts[1], parts[2].strip()
        if not key.isdigit():
            issues.add(path, number, f"bad movie id {key!r}", "bad id")
            continue
        flags = parts[5:]
        if any(f not in ("0", "1") for f in flags):
            issues.add(path, number, "genre flags must be 0 or 1", "bad genre flags")
            continue
        name, year = split_title(title)
        genres = tuple(g for g, flag in zip(ML_100K_GENRES, flags, strict=True) if flag == "1")
        movies.append(Movie(key, name, _release_date(released, year), genres))
    return movies


def _dat_movies(path: Path, issues: IssueLog) -> list[Movie]:
    movies: list[Movie] = []
    for number, text in read_lines(path, _LATIN1, issues):
        parts = split_movie_line(text)
        if parts is None:
            issues.add(path, number, "expected MovieID::Title (year)::Genres", "wrong field count")
            continue
        key, title, genres = parts
        if not key.strip().isdigit():
            issues.add(path, number, f"bad movie id {key!r}", "bad id")
            continue
        name, year = split_title(title)
        movies.append(Movie(key.strip(), name, _year_date(year), _genre_list(genres)))
    return movies


def _csv_movies(path: Path, issues: IssueLog) -> list[Movie]:
    movies: list[Movie] = []
    for number, (key, title, genres) in _csv_rows(path, ["movieId", "title", "genres"], issues):
        if not key.strip().isdigit():
            issues.add(path, number, f"bad movie id {key!r}", "bad id")
            continue
        name, year = split_title(title)
        movies.append(Movie(key.strip(), name, _year_date(year), _genre_list(genres)))
    return movies


def _genre_list(text: str) -> tuple[str, ...]:
    return tuple(g.strip() for g in text.split("|") if g.strip())


def _year_date(year: int | None) -> date | None:
    return date(year, 1, 1) if year and 1870 <= year <= 2100 else None


def _release_date(text: str, year: int | None) -> date | None:
    """u.item dates look like ``01-Jan-1995``; fall back to the year in the title."""
    try:
        return datetime.strptime(text, "%d-%b-%Y").date() if text else _year_date(year)
    except ValueError:
        return _year_date(year)


def _count_lines(path: Path) -> int | None:
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def _refuse_movietweetings(path: Path) -> None:
    """MovieTweetings uses the same file names as ml-1m; its users.dat gives it away."""
    users = path / "users.dat"
    if users.is_file():
        with users.open("r", encoding=_LATIN1) as handle:
            first = handle.readline().strip()
        if first and len(first.split("::")) == 2:
            raise ImportFormatError(
                f"{path} looks like MovieTweetings (users.dat is user_id::twitter_id), not "
                "MovieLens 1M: use `recsys import movietweetings`"
            )
