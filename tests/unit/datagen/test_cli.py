"""`recsys world`, `recsys simulate` and `recsys import`: flags, messages and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from recsys.cli.main import build_app
from recsys.config import LakeSettings
from recsys.lake import load_catalog
from recsys_datagen.lake_tables import DIM_MEMBERS, DIM_TITLES, read_dim
from tests.unit.datagen.paths import FIXTURES, MOVIETWEETINGS


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty lake for the commands to use (they read RECSYS_LAKE__WAREHOUSE)."""
    monkeypatch.setenv("RECSYS_LAKE__WAREHOUSE", str(tmp_path / "lake"))
    return tmp_path / "lake"


def _run(*argv: str) -> Result:
    return CliRunner().invoke(build_app(), list(argv), env={"COLUMNS": "200"})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["world", "generate", "--titles", "0"], "Invalid value for '--titles'"),
        (["world", "generate", "--as-of", "yesterday"], "Invalid value for '--as-of'"),
        (["simulate", "--rate", "0"], "Invalid value for '--rate'"),
        (["simulate", "--duplicates", "0.7"], "Invalid value for '--duplicates'"),
        (
            ["simulate", "--duplicates", "0.45", "--late", "0.45", "--malformed", "0.1"],
            "leave too few",
        ),
        (["simulate", "--world-from", "s3"], "Invalid value for '--world-from'"),
        (["import", "movielens", str(FIXTURES / "ml-100k"), "--country", "XX"], "not an ISO"),
        (
            ["import", "movietweetings", "x", "--concurrency", "0"],
            "Invalid value for '--concurrency'",
        ),
    ],
)
def test_bad_flags_are_refused_with_a_usage_error(
    lake: Path, argv: list[str], message: str
) -> None:
    result = _run(*argv)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_world_generate_into_the_lake_only(lake: Path) -> None:
    result = _run("world", "generate", "--no-cassandra", "--titles", "30", "--members", "50")
    assert result.exit_code == 0, result.output
    assert "world seed 42: 30 titles, 50 members" in result.output
    assert "lake       recsys.dim_titles" in result.output
    settings = LakeSettings(warehouse=lake)
    catalog = load_catalog(settings)
    titles = read_dim(catalog, settings, DIM_TITLES)
    members = read_dim(catalog, settings, DIM_MEMBERS)
    assert titles is not None
    assert titles.num_rows == 30
    assert members is not None
    assert members.num_rows == 50


def test_simulate_without_a_world_says_what_to_run(lake: Path) -> None:
    result = _run("simulate", "--duration", "1")
    assert result.exit_code == 1
    assert "no synthetic world in the lake" in result.output
    assert "run `recsys world generate` first" in result.output


def test_simulate_without_an_ingest_says_where_it_looked(lake: Path) -> None:
    assert (
        _run("world", "generate", "--no-cassandra", "--titles", "30", "--members", "50").exit_code
        == 0
    )
    result = _run("simulate", "--duration", "1", "--ingest-url", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert "cannot reach the ingest API at http://127.0.0.1:9" in result.output


def test_import_dry_run_prints_counts_and_bad_lines(lake: Path) -> None:
    result = _run("import", "movielens", str(FIXTURES / "ml-100k"), "--dry-run")
    assert result.exit_code == 0, result.output
    for text in (
        "ml-100k at",
        "9 read from 12 lines of u.data (3 bad)",
        "6 read from 7 lines of u.item (1 bad)",
        "4 with ratings (users file: 6 lines)",
        "u.data:10: rating '7'",
        "27 built",
    ):
        assert text in result.output


def test_import_movietweetings_dry_run_with_a_limit(lake: Path) -> None:
    result = _run("import", "movietweetings", str(MOVIETWEETINGS), "--dry-run", "--limit", "1000")
    assert result.exit_code == 0, result.output
    assert "100000 read from 100000 lines of ratings.dat (0 bad)" in result.output
    assert "10506 read from 10506 lines of movies.dat (0 bad)" in result.output
    assert "16554 with ratings (users file: 16554 lines)" in result.output
    assert "the 1000 earliest ratings" in result.output
    assert "3000 built" in result.output


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["import", "movielens", "/no/such/dir"], "/no/such/dir does not exist"),
        (["import", "movielens", str(FIXTURES)], "holds no MovieLens files"),
        (["import", "movielens", str(MOVIETWEETINGS), "--dry-run"], "looks like MovieTweetings"),
        (
            ["import", "movietweetings", str(FIXTURES / "ml-1m"), "--dry-run"],
            "looks like MovieLens 1M",
        ),
    ],
)
def test_bad_input_paths_are_one_clear_line(lake: Path, argv: list[str], message: str) -> None:
    result = _run(*argv)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
