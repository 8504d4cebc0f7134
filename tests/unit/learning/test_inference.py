"""The serving path's title index: exclusions never shrink an answer the catalog can fill."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys.models.inference import TitleIndex


def _index() -> TitleIndex:
    vectors = np.eye(6, 4, dtype=np.float32)[[0, 1, 2, 3, 0, 1]] * np.asarray(
        [[1.0], [0.9], [0.8], [0.7], [0.6], [0.5]], np.float32
    )
    return TitleIndex.build(vectors, ["a", "b", "c", "d", "e", "f"])


def test_search_excludes_and_still_returns_k() -> None:
    index = _index()
    query = np.ones((1, 4), np.float32)
    assert [t for t, _ in index.search(query, 3)[0]] == ["a", "b", "c"]
    got = index.search(query, 3, [{"a", "b", "c", "zz"}])[0]
    assert [t for t, _ in got] == ["d", "e", "f"]
    assert got[0][1] == np.float32(0.7)


def test_search_is_short_only_when_the_catalog_runs_out() -> None:
    index = _index()
    query = np.ones((2, 4), np.float32)
    got = index.search(query, 5, [{"a", "b", "c"}, set()])
    assert [t for t, _ in got[0]] == ["d", "e", "f"]
    assert len(got[1]) == 5


def test_save_and_load(tmp_path: Path) -> None:
    index = _index()
    index.save(tmp_path / "i.faiss", tmp_path / "ids.json")
    again = TitleIndex.load(tmp_path / "i.faiss", tmp_path / "ids.json")
    query = np.ones((1, 4), np.float32)
    assert again.search(query, 6) == index.search(query, 6)
    assert np.array_equal(again.vectors(), index.vectors())


def test_a_ranker_trained_for_other_cross_features_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    import json

    import onnx
    from onnx import TensorProto, helper

    from recsys.models.inference import (
        RANKER_CONFIG_FILE,
        RANKER_FILE,
        TITLE_FEATURES_FILE,
        Ranker,
    )
    from recsys.models.vectorize import SPEC_FILE, FeatureSpec

    spec = FeatureSpec(titles=("a", "b"))
    (tmp_path / SPEC_FILE).write_bytes(spec.to_json())
    np.save(tmp_path / TITLE_FEATURES_FILE, np.zeros((spec.n_titles, spec.title_dense_dim)))
    (tmp_path / RANKER_CONFIG_FILE).write_text(json.dumps({"weights": [1, 0, 0], "candidates": 5}))
    # A ranker of the four cross features before the item-neighbour ones.
    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["cross"], ["probabilities"])],
        "old",
        [helper.make_tensor_value_info("cross", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, tmp_path / RANKER_FILE)
    with pytest.raises(ValueError, match=r"takes 4 cross features .* train a new ranker") as error:
        Ranker.from_dir(tmp_path)
    assert "\n" not in str(error.value)
    (tmp_path / RANKER_FILE).write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"^onnxruntime cannot load ranker.onnx: ") as error:
        Ranker.from_dir(tmp_path)
    assert "\n" not in str(error.value)
