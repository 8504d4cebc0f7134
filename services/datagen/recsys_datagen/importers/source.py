"""What an importer reads from a dataset, before it becomes events and catalog rows.

A parser fills a :class:`SourceData`: the movies, the ratings as numpy columns (millions of rows
stay compact; MovieLens 25M is 25 million), and an :class:`IssueLog` of every line it could not
use, with file, line number and reason. Parsers never stop at a bad line; they stop only when a
file is missing or plainly in another format (:class:`ImportFormatError`).
"""

from __future__ import annotations

import re
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from recsys.event_time import MAX_CLOCK_SKEW

__all__ = [
    "COMPLETE_LEAD_S",
    "EARLIEST_TIMESTAMP",
    "IMPORTED_RUNTIME_MIN",
    "SHORT_RUNTIME_MIN",
    "ImportFormatError",
    "IssueLog",
    "LineIssue",
    "Movie",
    "RatingsBuilder",
    "SourceData",
    "read_lines",
    "split_movie_line",
    "split_title",
    "timestamp_problem",
]

# The ingest refuses events before 1995-01-01 (and after now + 24 h).
EARLIEST_TIMESTAMP = int(datetime(1995, 1, 1, tzinfo=UTC).timestamp())
# Neither dataset has runtimes: an imported film runs this long (a short film 15 min), and its
# complete event comes this long before the rating. A rating's play is therefore at most
# IMPORTED_RUNTIME_MIN + 1 min before it; see docs/data.md.
IMPORTED_RUNTIME_MIN = 100
SHORT_RUNTIME_MIN = 15
COMPLETE_LEAD_S = 60
_PLAY_LEAD_S = IMPORTED_RUNTIME_MIN * 60 + COMPLETE_LEAD_S
_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:[-\u2013]\d{0,4})?\)\s*$")
_ARTICLE = re.compile(r"^(?P<rest>.+), (?P<article>The|A|An)$")
# Give up on a file whose first lines are nearly all unusable: it is some other format.
_SNIFF_LINES = 1_000
_SNIFF_BAD_SHARE = 0.9


class ImportFormatError(ValueError):
    """A file is missing or is not in the expected format; the message says which and why."""


@dataclass(frozen=True, slots=True)
class LineIssue:
    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass(slots=True)
class IssueLog:
    """Unusable lines, each counted once (by file and by kind of problem), the first few kept
    whole; and warnings about lines that were used anyway (bytes replaced in a title)."""

    keep: int = 50
    count: int = 0
    first: list[LineIssue] = field(default_factory=list)
    by_kind: Counter[str] = field(default_factory=Counter)
    by_file: Counter[str] = field(default_factory=Counter)
    warnings: list[LineIssue] = field(default_factory=list)
    warning_count: int = 0

    def add(self, path: Path, line: int, reason: str, kind: str | None = None) -> None:
        self.count += 1
        self.by_kind[kind or reason] += 1
        self.by_file[path.name] += 1
        if len(self.first) < self.keep:
            self.first.append(LineIssue(path, line, reason))

    def warn(self, path: Path, line: int, reason: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < self.keep:
            self.warnings.append(LineIssue(path, line, reason))

    def check_format(self, path: Path, lines: int) -> None:
        """Raise once the first lines of ``path`` were (nearly) all bad: a file in some other
        format, not a few bad records, so parsing millions more lines would only add noise."""
        bad = self.by_file[path.name]
        if lines == _SNIFF_LINES and bad >= _SNIFF_BAD_SHARE * lines:
            examples = "; ".join([str(i) for i in self.first if i.path == path][:3])
            raise ImportFormatError(
                f"{path} is not in the expected format: {bad} of its first {lines} lines are "
                f"unusable ({examples})"
            )


@dataclass(frozen=True, slots=True)
class Movie:
    key: str  # the dataset's own movie id, as written in the file
    name: str
    release_date: date | None
    genres: tuple[str, ...]  # the dataset's genre names


class RatingsBuilder:
    """Appends parsed ratings to compact typed arrays (8 bytes per value, not a Python object)."""

    def __init__(self) -> None:
        self._user = array("q")
        self._movie = array("q")
        self._rating = array("d")
        self._timestamp = array("q")
        self._movie_index: dict[str, int] = {}
        self.movie_keys: list[str] = []

    def __len__(self) -> int:
        return len(self._user)

    def movie_index(self, key: str) -> int:
        index = self._movie_index.get(key)
        if index is None:
            index = self._movie_index[key] = len(self.movie_keys)
            self.movie_keys.append(key)
        return index

    def add(self, user: int, movie_key: str, rating: float, timestamp: int) -> None:
        self._user.append(user)
        self._movie.append(self.movie_index(movie_key))
        self._rating.append(rating)
        self._timestamp.append(timestamp)

    def columns(
        self,
    ) -> tuple[
        npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]
    ]:
        return (
            np.frombuffer(self._user, dtype=np.int64),
            np.frombuffer(self._movie, dtype=np.int64),
            np.frombuffer(self._rating, dtype=np.float64),
            np.frombuffer(self._timestamp, dtype=np.int64),
        )


@dataclass(slots=True)
class SourceData:
    source: str  # movielens | movietweetings
    format: str  # ml-100k, ml-1m, ml-latest, movietweetings
    path: Path
    movies: list[Movie]
    movie_keys: list[str]  # rating column ``movie`` indexes this list
    user: npt.NDArray[np.int64]  # the dataset's user id
    movie: npt.NDArray[np.int64]
    rating: npt.NDArray[np.float64]  # on the dataset's own scale
    timestamp: npt.NDArray[np.int64]  # unix seconds
    ratings_file: Path
    movies_file: Path
    users_in_file: int | None  # lines of users.dat / u.user, when the dataset has one
    issues: IssueLog

    @classmethod
    def collect(
        cls,
        *,
        source: str,
        format: str,
        path: Path,
        movies: list[Movie],
        ratings: RatingsBuilder,
        ratings_file: Path,
        movies_file: Path,
        users_in_file: int | None,
        issues: IssueLog,
    ) -> SourceData:
        """What a reader parsed, with the ratings builder turned into its columns."""
        user, movie, rating, timestamp = ratings.columns()
        return cls(
            source=source,
            format=format,
            path=path,
            movies=movies,
            movie_keys=ratings.movie_keys,
            user=user,
            movie=movie,
            rating=rating,
            timestamp=timestamp,
            ratings_file=ratings_file,
            movies_file=movies_file,
            users_in_file=users_in_file,
            issues=issues,
        )

    @property
    def ratings(self) -> int:
        return len(self.user)

    @property
    def rating_lines(self) -> int:
        """Data lines of the ratings file: each became a rating or exactly one issue."""
        return self.ratings + self.issues.by_file[self.ratings_file.name]

    @property
    def movie_lines(self) -> int:
        return len(self.movies) + self.issues.by_file[self.movies_file.name]

    @property
    def users(self) -> int:
        return len(np.unique(self.user))


def read_lines(path: Path, encoding: str, issues: IssueLog) -> Iterator[tuple[int, str]]:
    """(line number, text without the line break) of each non-blank line.

    Bytes that are not valid in ``encoding`` are replaced and the line is kept, with a warning.
    After the first lines it checks the file is not in another format altogether.
    """
    if not path.is_file():
        raise ImportFormatError(f"{path} is missing")
    seen = 0
    with path.open("r", encoding=encoding, errors="replace", newline="") as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.rstrip("\r\n")
            if not text.strip():
                continue
            if "\ufffd" in text:
                issues.warn(path, number, f"bytes that are not {encoding} were replaced")
            yield number, text
            seen += 1
            issues.check_format(path, seen)


def split_movie_line(text: str, separator: str = "::") -> tuple[str, str, str] | None:
    """``id::title::genres`` of a ``.dat`` movie line. The id is cut off the front and the genres
    off the back, so a title may itself contain the separator; None if there are not 3 parts."""
    if text.count(separator) < 2:
        return None
    key, rest = text.split(separator, 1)
    title, genres = rest.rsplit(separator, 1)
    return key.strip(), title.strip(), genres.strip()


def split_title(text: str) -> tuple[str, int | None]:
    """``"American President, The (1995)"`` -> ``("The American President", 1995)``."""
    match = _YEAR.match(text)
    name, year = (match["title"], int(match["year"])) if match else (text.strip(), None)
    article = _ARTICLE.match(name)
    if article:
        name = f"{article['article']} {article['rest']}"
    return name or text.strip(), year


def timestamp_problem(timestamp: int, now: datetime) -> str | None:
    """Why the ingest would refuse the events of a rating at ``timestamp`` (its play comes up to
    ``IMPORTED_RUNTIME_MIN`` + 1 min earlier), or None when it accepts them."""
    if timestamp - _PLAY_LEAD_S < EARLIEST_TIMESTAMP:
        return f"timestamp {timestamp} is before 1995-01-01 (the earliest event time accepted)"
    if timestamp > (now + MAX_CLOCK_SKEW).timestamp():
        return f"timestamp {timestamp} is in the future (beyond the clock-skew bound)"
    return None
