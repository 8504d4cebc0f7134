"""Where the datagen tests find their data files."""

from __future__ import annotations

from pathlib import Path

from recsys.config import repo_root

# The MovieTweetings 100k snapshot shared beside the checkout (../shared/data).
MOVIETWEETINGS = repo_root().parent / "shared" / "data" / "movietweetings-100k"
# Small MovieLens files in the three layouts, with deliberately bad lines (see their README).
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "movielens"
