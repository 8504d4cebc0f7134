"""The learning stage's entry point: lake -> models -> ONNX + FAISS -> registry + gold table.

    summary = train_and_register(settings, registry, as_of=None, progress=print, promote=True)

``as_of`` defaults to the day of the newest playback or rating in silver, so imported history
(MovieLens 100K ends in 1998) trains on its own time. The run trains the baselines and both
models, evaluates them on the held-out split (:mod:`recsys_pipelines.learning.fit`), writes the
table to ``gold_offline_evaluation`` (the as-of day's partition is replaced) and into the
manifests, and publishes a ``two_tower`` and a ``ranker`` version (promoted when ``promote``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from recsys.config import Settings
from recsys.lake import load_catalog
from recsys.models import Manifest, ModelRegistry
from recsys.models.inference import RANKER_CONFIG_FILE
from recsys.models.vectorize import title_feature_names, user_feature_names
from recsys_pipelines.contracts import GOLD_OFFLINE_EVALUATION
from recsys_pipelines.errors import PipelineError
from recsys_pipelines.learning.evaluation import EvalRow, format_table, gold_rows
from recsys_pipelines.learning.fit import (
    FitResult,
    LearningConfig,
    fit_and_evaluate,
    split_description,
)
from recsys_pipelines.learning.lakedata import load_lake_data
from recsys_pipelines.silver import latest_event_day
from recsys_pipelines.tables import open_table, replace_partitions

__all__ = ["TrainingSummary", "train_and_register"]

TWO_TOWER = "two_tower"
RANKER = "ranker"


@dataclass
class TrainingSummary:
    as_of: date
    versions: dict[str, str]  # model name -> version published
    promoted: bool
    rows: list[EvalRow]
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> wall seconds
    parity: dict[str, float] = field(default_factory=dict)  # ONNX vs torch, max abs diff
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def table(self) -> str:
        return format_table(self.rows)


def train_and_register(
    settings: Settings,
    registry: ModelRegistry,
    *,
    as_of: date | None = None,
    progress: Callable[[str], None] = lambda _: None,
    promote: bool = True,
    config: LearningConfig | None = None,
) -> TrainingSummary:
    config = config or LearningConfig()
    started = time.perf_counter()
    catalog = load_catalog(settings.lake)
    if as_of is None:
        as_of = latest_event_day(catalog, settings.lake)
        if as_of is None:
            raise PipelineError(
                "no interactions to train on: silver has no playback or rating "
                "(import or simulate events, then `recsys pipeline run silver`)"
            )
    data = load_lake_data(catalog, settings.lake, settings.pipelines, as_of)
    if len(data.interactions) == 0:
        raise PipelineError(
            f"no interactions to train on up to {as_of}: silver has no playback or rating "
            "on or before that day"
        )
    load_seconds = time.perf_counter() - started
    progress(
        f"learning: {len(data.interactions)} interactions of {data.interactions.n_users} "
        f"members over {data.interactions.n_titles} titles, as of {as_of} ({load_seconds:.1f} s)"
    )
    with tempfile.TemporaryDirectory(prefix="recsys-learning-") as work:
        result = fit_and_evaluate(data, config, Path(work), progress=progress)
        if result.rows:
            progress("offline evaluation (held-out interactions):\n" + format_table(result.rows))
        versions = _publish(registry, result, data.lineage, config, promote)
    evaluated_at = datetime.now(UTC)
    if result.rows:
        _write_gold(settings, result, as_of, evaluated_at, versions, config)
    seconds = {"load": load_seconds, **result.seconds}
    seconds["total"] = time.perf_counter() - started
    return TrainingSummary(
        as_of=as_of,
        versions=versions,
        promoted=promote,
        rows=result.rows,
        seconds=seconds,
        parity=result.published.parity,
        counts={
            "interactions": len(data.interactions),
            "members": data.interactions.n_users,
            "titles": data.interactions.n_titles,
            "train": result.train_interactions,
            "test": result.test_interactions,
            "evaluated_members": result.eval_users,
        },
    )


def _metrics(result: FitResult, model: str, config: LearningConfig) -> dict[str, Any]:
    mine = next((r for r in result.rows if r.model == model), None)
    table: dict[str, Any] = {r.model: r.scores.as_dict() for r in result.rows}
    out: dict[str, Any] = dict(mine.scores.as_dict()) if mine else {}
    out.update(
        {
            "evaluated_members": result.eval_users,
            "split": split_description(config),
            "table": table,
            "onnx_parity_max_abs_diff": result.published.parity,
        }
    )
    return out


def _json(value: Any) -> Any:
    """``value`` as plain JSON types (tuples become lists), as the manifest requires."""
    return json.loads(json.dumps(value, default=str))


def _copy(source: Path, target: Path) -> None:
    for item in source.iterdir():
        shutil.copy2(item, target / item.name)


def _publish(
    registry: ModelRegistry,
    result: FitResult,
    lineage: dict[str, Any],
    config: LearningConfig,
    promote: bool,
) -> dict[str, str]:
    published = result.published
    feature_versions: dict[str, Any] = {"feature_spec": result.spec.version}
    with registry.new_version(TWO_TOWER) as staging:
        _copy(published.two_tower_dir, staging.path)
        staging.manifest = Manifest(
            features=[*user_feature_names(), *title_feature_names()],
            metrics=_metrics(result, "two_tower", config),
            params={
                "two_tower": config.two_tower.params(),
                "history_length": config.history_length,
            },
            training_data=_json(lineage),
            feature_versions=feature_versions,
        )
    two_tower = staging.version
    assert two_tower is not None
    with registry.new_version(RANKER) as staging:
        _copy(published.ranker_dir, staging.path)
        # The ranker's cross features include the score of the two-tower it was paired with.
        config_file = staging.path / RANKER_CONFIG_FILE
        ranker_config = json.loads(config_file.read_bytes())
        ranker_config["two_tower_version"] = two_tower
        config_file.write_bytes(json.dumps(ranker_config).encode())
        staging.manifest = Manifest(
            features=[*user_feature_names(), *title_feature_names()],
            metrics=_json(_metrics(result, "two_tower+ranker", config)),
            params=_json(
                {
                    "ranker": config.ranker.params(),
                    "weights": list(config.ranker_weights),
                    "candidates": config.candidates,
                    "two_tower_version": two_tower,
                }
            ),
            training_data=_json(lineage),
            feature_versions=feature_versions,
        )
    ranker = staging.version
    assert ranker is not None
    if promote:
        registry.promote(TWO_TOWER, two_tower)
        registry.promote(RANKER, ranker)
    return {TWO_TOWER: two_tower, RANKER: ranker}


def _write_gold(
    settings: Settings,
    result: FitResult,
    as_of: date,
    evaluated_at: datetime,
    versions: dict[str, str],
    config: LearningConfig,
) -> None:
    import pyarrow as pa  # type: ignore[import-untyped]

    catalog = load_catalog(settings.lake)
    rows = gold_rows(
        result.rows,
        as_of=as_of,
        evaluated_at=evaluated_at,
        split=split_description(config),
        train_interactions=result.train_interactions,
        test_interactions=result.test_interactions,
        versions=versions,
    )
    table = open_table(catalog, settings.lake, GOLD_OFFLINE_EVALUATION)
    replace_partitions(
        table,
        GOLD_OFFLINE_EVALUATION,
        pa.Table.from_pylist(rows, GOLD_OFFLINE_EVALUATION.arrow),
        [as_of],
        {"recsys.learning.evaluated_at": evaluated_at.isoformat(), **versions},
    )
