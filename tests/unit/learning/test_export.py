"""ONNX parity: the exported user tower and ranker compute what torch does, on real rows
(vectorised training examples), within 1e-4; and the serving classes read the exported files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recsys.models.inference import TitleIndex, UserTower
from recsys.models.vectorize import cross_features
from recsys_pipelines.learning.examples import (
    NoContext,
    catalog_inputs,
    make_spec,
    sequence_examples,
)
from recsys_pipelines.learning.export import (
    PARITY_TOLERANCE,
    ParityError,
    export_ranker,
    export_user_tower,
)
from recsys_pipelines.learning.interactions import Interactions
from recsys_pipelines.learning.ranker import RankerConfig, RankerData, train_ranker
from recsys_pipelines.learning.two_tower import (
    TwoTowerConfig,
    title_embeddings,
    train_two_tower,
)


@pytest.fixture(scope="module")
def trained() -> tuple:  # type: ignore[type-arg]
    rng = np.random.default_rng(5)
    n = 1500
    data = Interactions.build(
        [f"u{i}" for i in rng.integers(0, 80, n)],
        [f"t{i}" for i in rng.zipf(1.4, n) % 60],
        rng.integers(0, 10**12, n),
        ratings=rng.integers(1, 6, n),
        completed=rng.random(n) < 0.5,
    )
    spec = make_spec(data, countries=["US"], languages=["en"], history_length=10)
    genres = [["drama"], ["comedy", "drama"], []]
    catalog = catalog_inputs(spec, {"title_genres": [genres[i % 3] for i in range(data.n_titles)]})
    examples = sequence_examples(data, spec, NoContext())
    model = train_two_tower(
        spec, examples.users, examples.targets, catalog, TwoTowerConfig(epochs=2, seed=1)
    )
    titles = catalog.take(examples.targets)
    vectors = title_embeddings(model, catalog)
    with torch.no_grad():
        users = model.user(*(torch.from_numpy(a) for a in examples.users.as_feeds().values()))
    score = (users.numpy() * vectors[examples.targets]).sum(axis=1)
    data_rows = RankerData(
        examples.users.dense,
        examples.users.cat,
        titles.title,
        titles.dense,
        cross_features(examples.users, titles, score.astype(np.float32)),
        np.stack([np.ones(len(data)), data.completed, data.rating >= 4], axis=1).astype(np.float32),
    )
    ranker = train_ranker(spec, data_rows, RankerConfig(epochs=1, hidden=(32, 16)))
    return model, ranker, examples, data_rows, vectors


def test_user_tower_parity_on_real_rows(trained: tuple, tmp_path: Path) -> None:  # type: ignore[type-arg]
    model, _, examples, _, _ = trained
    path = tmp_path / "user_tower.onnx"
    diff = export_user_tower(model.user, path, examples.users.take(np.arange(200)))
    assert diff <= PARITY_TOLERANCE
    # Every example row, variable batch sizes, through the serving class.
    tower = UserTower(path)
    for rows in (np.arange(1), np.arange(len(examples.targets))):
        got = tower.embed(examples.users.take(rows))
        with torch.no_grad():
            want = model.user(
                *(torch.from_numpy(a) for a in examples.users.take(rows).as_feeds().values())
            ).numpy()
        assert float(np.max(np.abs(got - want))) <= PARITY_TOLERANCE


def test_ranker_parity_on_real_rows(trained: tuple, tmp_path: Path) -> None:  # type: ignore[type-arg]
    _, ranker, _, rows, _ = trained
    diff = export_ranker(ranker, tmp_path / "ranker.onnx", rows.feeds(slice(0, 700)))
    assert diff <= PARITY_TOLERANCE


def test_faiss_ranks_as_the_model_scores(trained: tuple) -> None:  # type: ignore[type-arg]
    model, _, examples, _, vectors = trained
    index = TitleIndex.build(vectors[1:], [f"x{i}" for i in range(vectors.shape[0] - 1)])
    with torch.no_grad():
        user = model.user(
            *(torch.from_numpy(a) for a in examples.users.take(np.arange(3)).as_feeds().values())
        ).numpy()
    found = index.search(user, 5)
    for q in range(3):
        want = np.argsort(-(vectors[1:] @ user[q]), kind="stable")[:5]
        assert [t for t, _ in found[q]] == [f"x{i}" for i in want]


def test_a_broken_export_fails_the_parity_check(trained: tuple, tmp_path: Path) -> None:  # type: ignore[type-arg]
    from recsys_pipelines.learning import export

    model, _, examples, _, _ = trained
    # The check can fail: compare the file against a model whose weights then moved.
    path = tmp_path / "u.onnx"
    export_user_tower(model.user, path, examples.users.take(np.arange(10)))
    with torch.no_grad():
        model.user.mlp[0].bias.add_(1.0)
    try:
        with pytest.raises(ParityError, match="differs from torch"):
            export._parity(
                path, model.user, examples.users.take(np.arange(10)).as_feeds(), "user_embedding"
            )
    finally:
        with torch.no_grad():
            model.user.mlp[0].bias.sub_(1.0)
