"""``recsys recommend-offline``: top-K lists for every member through the serving models.

    report = recommend_offline(settings, registry, k=10, out=Path("recs.tsv"), users=None)

Writes ``user_id<TAB>title_id<TAB>rank<TAB>score`` (rank from 1, best first; no header) for
every member of the lake (``dim_members`` and anyone with an interaction), or for the members
listed, with the registry's current ``two_tower`` and ``ranker`` versions through
:func:`recsys.models.inference.recommend`, the code path the candidates and ranker services use.
A member's inputs are those serving would see at the end of the data's latest day: the recent
titles from the lake, the batch features of that day's snapshot, real-time features at their
defaults. Titles the member already played or rated are never listed. The file is written to a
temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recsys.catalog import ID_PATTERN
from recsys.config import Settings
from recsys.lake import load_catalog
from recsys.models import ModelRegistry, RegistryError
from recsys.models.inference import Ranker, Retrieval, recommend
from recsys_pipelines.errors import PipelineError
from recsys_pipelines.learning.examples import user_inputs
from recsys_pipelines.learning.lakedata import end_of, load_lake_data
from recsys_pipelines.silver import latest_event_day

__all__ = ["OfflineReport", "read_user_list", "recommend_offline"]

BATCH = 256


@dataclass(frozen=True)
class OfflineReport:
    members: int
    lines: int
    two_tower: str
    ranker: str | None
    seconds: float


def read_user_list(path: Path) -> list[str]:
    """Member ids, one a line (blank lines and ``#`` comments skipped); a bad id is an error
    naming its line."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError(f"cannot read the user list {path}: {exc}") from None
    users: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.strip()
        if not value or value.startswith("#"):
            continue
        if not ID_PATTERN.match(value):
            raise PipelineError(f"{path}:{number}: {value[:70]!r} is not a member id")
        users.append(value)
    return list(dict.fromkeys(users))


def _models(registry: ModelRegistry) -> tuple[Retrieval, Ranker | None]:
    try:
        two_tower = registry.current("two_tower") if "two_tower" in registry.names() else None
        if two_tower is None:
            raise PipelineError(
                f"no current two_tower model in the registry at {registry.root}: run "
                "`recsys pipeline bootstrap` (or promote a version) first"
            )
        ranker = registry.current("ranker") if "ranker" in registry.names() else None
        retrieval = Retrieval.load(two_tower)
        return retrieval, Ranker.load(ranker) if ranker is not None else None
    except RegistryError as exc:
        raise PipelineError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise PipelineError(f"cannot load the current models: {exc}") from None


def recommend_offline(
    settings: Settings,
    registry: ModelRegistry,
    *,
    k: int,
    out: Path,
    users: Sequence[str] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> OfflineReport:
    if not 1 <= k <= 1000:
        raise PipelineError(f"k must be between 1 and 1000, not {k}")
    started = time.perf_counter()
    retrieval, ranker = _models(registry)
    catalog = load_catalog(settings.lake)
    as_of = latest_event_day(catalog, settings.lake)
    if as_of is None:
        raise PipelineError("the lake has no playback or rating: nothing to recommend from")
    data = load_lake_data(catalog, settings.lake, settings.pipelines, as_of)
    interactions = data.interactions
    known = {u: i for i, u in enumerate(interactions.users)}
    wanted = list(interactions.users) if users is None else list(users)
    per_user = interactions.per_user()
    titles = interactions.titles
    spec = retrieval.spec
    at = end_of(as_of)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    lines = 0
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for start in range(0, len(wanted), BATCH):
                block = wanted[start : start + BATCH]
                # In time order; a member the lake does not know has no history.
                mine = [
                    [titles[t] for t in per_user[known[u]].tolist()] if u in known else []
                    for u in block
                ]
                inputs = user_inputs(
                    block,
                    [m[::-1][: spec.history_length] for m in mine],
                    spec,
                    data.context,
                    np.full(len(block), at, np.int64),
                )
                played = [set(m) for m in mine]
                lists = recommend(retrieval, ranker, inputs, played, k=k)
                for user, found, seen in zip(block, lists, played, strict=True):
                    for rank, (title, score) in enumerate(found, start=1):
                        if title in seen:  # recommend() excludes them; never trust, check
                            raise AssertionError(f"{title} was played by {user}")
                        f.write(f"{user}\t{title}\t{rank}\t{score:.6f}\n")
                        lines += 1
                progress(f"recommend-offline: {min(start + BATCH, len(wanted))}/{len(wanted)}")
        os.replace(tmp, out)
    except OSError as exc:
        raise PipelineError(f"cannot write {out}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return OfflineReport(
        members=len(wanted),
        lines=lines,
        two_tower=retrieval.version,
        ranker=ranker.version if ranker else None,
        seconds=time.perf_counter() - started,
    )
