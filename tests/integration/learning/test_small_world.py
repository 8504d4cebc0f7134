"""A small synthetic world end to end through the learning stage: lake (bronze -> silver) ->
baselines + two-tower + ranker -> ONNX -> FAISS -> registry + gold table -> recommend-offline.

Runs against a lake of the test's own (no Kafka, Cassandra or Redis involved: the servers'
part of the chain is covered by the bootstrap's integration test)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsys.lake import load_catalog
from recsys.models import ModelRegistry
from recsys_pipelines.contracts import GOLD_OFFLINE_EVALUATION, SILVER_PLAYBACK, SILVER_RATINGS
from recsys_pipelines.errors import PipelineError
from recsys_pipelines.learning import LearningConfig, TrainingSummary, train_and_register
from recsys_pipelines.learning.ranker import RankerConfig
from recsys_pipelines.learning.two_tower import TwoTowerConfig
from recsys_pipelines.recommend_offline import recommend_offline
from recsys_pipelines.tables import read_table
from tests.integration.learning.world import WorldLake, small_world_lake

pytestmark = pytest.mark.integration

TINY = LearningConfig(
    two_tower=TwoTowerConfig(epochs=2, batch_size=256),
    ranker=RankerConfig(epochs=1, hidden=(32, 16)),
    candidates=30,
    ease_lambdas=(50.0,),
    als_grid=((8, 1.0, 10.0),),
    bpr_grid=((8, 0.01, 0.01),),
)
MODELS = {"popularity", "ease", "als", "bpr", "two_tower", "two_tower+ranker"}


@dataclass
class Trained:
    world: WorldLake
    registry: ModelRegistry
    summary: TrainingSummary
    root: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("learning")
    world = small_world_lake(root, titles=200, members=300, days=5, sessions_per_day=300)
    registry = ModelRegistry(world.settings.models.root)
    summary = train_and_register(world.settings, registry, config=TINY, promote=True)
    return Trained(world, registry, summary, root)


def _played(world: WorldLake) -> dict[str, set[str]]:
    catalog = load_catalog(world.settings.lake)
    played: dict[str, set[str]] = {}
    for contract in (SILVER_PLAYBACK, SILVER_RATINGS):
        rows = read_table(catalog, world.settings.lake, contract)
        for user, title in zip(
            rows.column("user_id").to_pylist(), rows.column("title_id").to_pylist(), strict=True
        ):
            played.setdefault(user, set()).add(title)
    return played


def test_both_models_are_published_promoted_and_described(trained: Trained) -> None:
    summary, registry = trained.summary, trained.registry
    assert summary.as_of == trained.world.last_day  # the data's own latest day
    assert {r.model for r in summary.rows} == MODELS
    for name in ("two_tower", "ranker"):
        current = registry.current(name)
        assert current is not None
        assert current.version == summary.versions[name]
        manifest = current.manifest
        assert manifest.training_data["as_of"] == str(trained.world.last_day)
        assert manifest.training_data["silver_snapshot_ids"]
        assert "recently_watched_title_ids" in manifest.features
        assert "recall@10" in manifest.metrics
        assert "ndcg@10" in manifest.metrics
        table = manifest.metrics["table"]
        assert isinstance(table, dict)
        assert set(table) == MODELS
    files = registry.current("two_tower")
    assert files is not None
    for name in ("user_tower.onnx", "title_index.faiss", "title_ids.json", "feature_spec.json"):
        assert files.file(name).is_file()
    ranker = registry.current("ranker")
    assert ranker is not None
    assert (
        json.loads(ranker.file("ranker.json").read_bytes())["two_tower_version"]
        == (summary.versions["two_tower"])
    )
    assert all(diff <= 1e-4 for diff in summary.parity.values())


def test_the_evaluation_is_in_the_gold_table(trained: Trained) -> None:
    settings = trained.world.settings
    rows = read_table(load_catalog(settings.lake), settings.lake, GOLD_OFFLINE_EVALUATION)
    got = {r["model"]: r for r in rows.to_pylist()}
    assert set(got) == MODELS
    for row in got.values():
        assert row["as_of_date"] == trained.world.last_day
        assert row["k"] == 10
        assert row["users"] > 0
        assert 0.0 <= row["recall_at_k"] <= 1.0
        assert row["two_tower_version"] == trained.summary.versions["two_tower"]
    ease = next(r for r in trained.summary.rows if r.model == "ease")
    assert got["ease"]["ndcg_at_k"] == pytest.approx(ease.scores.ndcg)


def test_recommend_offline_lists_every_member_and_never_a_played_title(trained: Trained) -> None:
    out = trained.root / "recs.tsv"
    report = recommend_offline(trained.world.settings, trained.registry, k=10, out=out)
    played = _played(trained.world)
    lists: dict[str, list[tuple[str, int, float]]] = {}
    for line in out.read_text().splitlines():
        user, title, rank, score = line.split("\t")
        lists.setdefault(user, []).append((title, int(rank), float(score)))
    assert len(lists) == report.members == 300
    for user, items in lists.items():
        titles = [t for t, _, _ in items]
        assert not set(titles) & played.get(user, set()), user
        assert [r for _, r, _ in items] == list(range(1, len(items) + 1))
        assert len(set(titles)) == len(titles) == 10  # 200 titles: always room for 10
        scores = [s for _, _, s in items]
        assert scores == sorted(scores, reverse=True)


def test_recommend_offline_for_listed_members_through_the_cli(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer

    from recsys_pipelines.cli import recommend_offline_command

    app = typer.Typer()
    app.command()(recommend_offline_command)
    played = _played(trained.world)
    member = next(iter(sorted(played)))
    users = trained.root / "users.txt"
    users.write_text(f"# two members\n{member}\n\nu-never-seen\n")
    out = trained.root / "some.tsv"
    monkeypatch.setenv("RECSYS_LAKE__WAREHOUSE", str(trained.world.settings.lake.warehouse))
    monkeypatch.setenv("RECSYS_MODELS__ROOT", str(trained.world.settings.models.root))
    result = CliRunner().invoke(app, ["--k", "5", "--out", str(out), "--users", str(users)])
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert {r[0] for r in rows} == {member, "u-never-seen"}
    assert len(rows) == 10
    assert not {r[1] for r in rows if r[0] == member} & played[member]

    bad = trained.root / "bad.txt"
    bad.write_text("ok-id\nnot an id!\n")
    result = CliRunner().invoke(app, ["--out", str(out), "--users", str(bad)])
    assert result.exit_code == 1
    assert "bad.txt:2:" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_an_empty_training_set_is_a_one_line_error(tmp_path: Path) -> None:
    world = small_world_lake(tmp_path, titles=50, members=20, days=1, sessions_per_day=0)
    registry = ModelRegistry(world.settings.models.root)
    with pytest.raises(PipelineError) as error:
        train_and_register(world.settings, registry, config=TINY)
    message = str(error.value)
    assert "no interactions to train on" in message
    assert "\n" not in message
    assert registry.names() == []
    with pytest.raises(PipelineError, match="no current two_tower model") as error:
        recommend_offline(world.settings, registry, k=10, out=tmp_path / "x.tsv")
    assert "\n" not in str(error.value)
