"""The serving code path of the learned models: onnxruntime, faiss and numpy, never torch.

The candidates and ranker services and ``recsys recommend-offline`` all go through this module,
with the inputs built by :mod:`recsys.models.vectorize` (the vectorisation training uses too).

    retrieval = Retrieval.load(registry.current("two_tower"))
    ranker = Ranker.load(registry.current("ranker"), retrieval)
    users = vectorize_users(retrieval.spec, columns)
    lists = recommend(retrieval, ranker, users, exclude=[{...played ids...}], k=10)

onnxruntime sessions run with explicit intra-op threads (1 by default) and spinning off: its
default thread pool spins and steals the CPU from an event loop in the same process. FAISS is
the exact inner-product index (``IndexFlatIP``) of the title tower's unit vectors.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from recsys.models.vectorize import (
    CROSS_DIM,
    SPEC_FILE,
    FeatureSpec,
    ItemNeighbours,
    TitleInputs,
    UserInputs,
    cross_features,
)

if TYPE_CHECKING:
    from recsys.models.registry import ModelVersion

__all__ = [
    "INDEX_FILE",
    "NEIGHBOURS_FILE",
    "RANKER_CONFIG_FILE",
    "RANKER_FILE",
    "TITLE_FEATURES_FILE",
    "TITLE_IDS_FILE",
    "USER_TOWER_FILE",
    "Ranker",
    "Retrieval",
    "TitleIndex",
    "UserTower",
    "onnx_session",
    "recommend",
]

USER_TOWER_FILE = "user_tower.onnx"
INDEX_FILE = "title_index.faiss"
TITLE_IDS_FILE = "title_ids.json"
RANKER_FILE = "ranker.onnx"
TITLE_FEATURES_FILE = "title_features.npy"
RANKER_CONFIG_FILE = "ranker.json"
NEIGHBOURS_FILE = "item_neighbours.npz"

F32 = npt.NDArray[np.float32]


def onnx_session(path: Path, *, threads: int = 1) -> Any:
    """An onnxruntime CPU session with ``threads`` intra-op threads and no spinning; a file
    onnxruntime cannot load is a ValueError of one line."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own classes (Fail, InvalidGraph, ...)
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
        raise ValueError(f"onnxruntime cannot load {path.name}: {reason[:300]}") from None


class UserTower:
    """The user tower: registry features (vectorised) -> unit vectors."""

    def __init__(self, path: Path, *, threads: int = 1) -> None:
        self._session = onnx_session(path, threads=threads)

    def embed(self, users: UserInputs) -> F32:
        (out,) = self._session.run(["user_embedding"], users.as_feeds())
        return np.asarray(out, np.float32)


class TitleIndex:
    """Exact inner product over the title vectors, with the title id of each row."""

    def __init__(self, index: Any, title_ids: Sequence[str]) -> None:
        if index.ntotal != len(title_ids):
            raise ValueError(f"index has {index.ntotal} vectors for {len(title_ids)} title ids")
        self._index = index
        self.title_ids = tuple(title_ids)
        self._row = {t: i for i, t in enumerate(self.title_ids)}

    @classmethod
    def build(cls, vectors: F32, title_ids: Sequence[str]) -> TitleIndex:
        import faiss

        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(np.ascontiguousarray(vectors, np.float32))
        return cls(index, title_ids)

    @classmethod
    def load(cls, index_path: Path, ids_path: Path) -> TitleIndex:
        import faiss

        ids = json.loads(ids_path.read_bytes())
        if not isinstance(ids, list) or not all(isinstance(t, str) for t in ids):
            raise ValueError(f"{ids_path} is not a JSON list of title ids")
        return cls(faiss.read_index(str(index_path)), ids)

    def save(self, index_path: Path, ids_path: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(index_path))
        ids_path.write_bytes(json.dumps(list(self.title_ids)).encode())

    def __len__(self) -> int:
        return len(self.title_ids)

    def vectors(self) -> F32:
        return np.asarray(self._index.reconstruct_n(0, self._index.ntotal), np.float32)

    def rows(self, title_ids: Collection[str]) -> list[int]:
        """The index rows of those of ``title_ids`` the index holds."""
        get = self._row.get
        return [r for t in title_ids if (r := get(t)) is not None]

    def search_allowed(
        self, query: F32, k: int, allowed: npt.NDArray[np.bool_]
    ) -> list[tuple[str, float]]:
        """Top ``k`` (title id, inner product) for one query over the rows where ``allowed``
        is True, best first: FAISS skips the others inside the search (an ID selector), so the
        answer is shorter than ``k`` only when fewer than ``k`` rows are allowed."""
        import faiss

        if allowed.shape != (len(self),):
            raise ValueError(f"allowed has shape {allowed.shape}, the index {len(self)} rows")
        k = min(k, len(self))
        if k == 0:
            return []
        bitmap = np.packbits(allowed, bitorder="little")
        params = faiss.SearchParameters()
        # The selector reads the bitmap in place: ``bitmap`` lives until the search returns.
        params.sel = faiss.IDSelectorBitmap(len(self), faiss.swig_ptr(bitmap))
        scores, rows = self._index.search(
            np.ascontiguousarray(query.reshape(1, -1), np.float32), k, params=params
        )
        ids = self.title_ids
        return [
            (ids[r], float(v))
            for r, v in zip(rows[0].tolist(), scores[0].tolist(), strict=True)
            if r >= 0
        ]

    def search(
        self, queries: F32, k: int, exclude: Sequence[Collection[str]] | None = None
    ) -> list[list[tuple[str, float]]]:
        """Top ``k`` (title id, inner product) per query, best first, without the titles of
        ``exclude[i]``: the search asks for ``k`` + the excluded titles that are in the index,
        so an answer is shorter than ``k`` only when the catalog has no more titles."""
        n = queries.shape[0]
        exclude = exclude if exclude is not None else [()] * n
        if len(exclude) != n:
            raise ValueError("one exclusion set per query")
        blocked = [{self._row[t] for t in ex if t in self._row} for ex in exclude]
        want = min(len(self), k + max((len(b) for b in blocked), default=0))
        if want == 0:
            return [[] for _ in range(n)]
        scores, rows = self._index.search(np.ascontiguousarray(queries, np.float32), want)
        out = []
        for q in range(n):
            picked = [
                (self.title_ids[r], float(s))
                for r, s in zip(rows[q].tolist(), scores[q].tolist(), strict=True)
                if r >= 0 and r not in blocked[q]
            ]
            out.append(picked[:k])
        return out


@dataclass
class Retrieval:
    """A two-tower version: the spec, the user tower and the title index."""

    spec: FeatureSpec
    tower: UserTower
    index: TitleIndex
    version: str = ""

    @classmethod
    def from_dir(cls, path: Path, *, threads: int = 1, version: str = "") -> Retrieval:
        spec = FeatureSpec.from_json((path / SPEC_FILE).read_bytes())
        index = TitleIndex.load(path / INDEX_FILE, path / TITLE_IDS_FILE)
        return cls(spec, UserTower(path / USER_TOWER_FILE, threads=threads), index, version)

    @classmethod
    def load(cls, version: ModelVersion, *, threads: int = 1) -> Retrieval:
        return cls.from_dir(version.path, threads=threads, version=version.version)


@dataclass
class Ranker:
    """A ranker version: the multi-task ONNX model, the title inputs it was trained with, and
    the weights of the combined score V = w1 P(play) + w2 P(complete) + w3 P(rate_high)."""

    spec: FeatureSpec
    titles: TitleInputs  # row i = spec index i
    weights: tuple[float, float, float]
    candidates: int
    neighbours: ItemNeighbours
    _session: Any = field(repr=False)
    version: str = ""

    @classmethod
    def from_dir(cls, path: Path, *, threads: int = 1, version: str = "") -> Ranker:
        spec = FeatureSpec.from_json((path / SPEC_FILE).read_bytes())
        dense = np.load(path / TITLE_FEATURES_FILE, allow_pickle=False).astype(np.float32)
        if dense.shape != (spec.n_titles, spec.title_dense_dim):
            raise ValueError(
                f"{TITLE_FEATURES_FILE} has shape {dense.shape}, spec wants "
                f"{(spec.n_titles, spec.title_dense_dim)}"
            )
        config = json.loads((path / RANKER_CONFIG_FILE).read_bytes())
        weights = tuple(float(w) for w in config["weights"])
        if len(weights) != 3:
            raise ValueError("ranker weights must be three numbers")
        titles = TitleInputs(np.arange(spec.n_titles, dtype=np.int64), dense)
        neighbours_path = path / NEIGHBOURS_FILE
        neighbours = (
            ItemNeighbours.load(neighbours_path, spec.n_titles)
            if neighbours_path.exists()
            else ItemNeighbours.empty(spec.n_titles)
        )
        session = onnx_session(path / RANKER_FILE, threads=threads)
        width = {i.name: i.shape for i in session.get_inputs()}["cross"][1]
        if width != CROSS_DIM:
            raise ValueError(
                f"{RANKER_FILE} takes {width} cross features and this code makes {CROSS_DIM}: "
                "train a new ranker (`recsys pipeline bootstrap`)"
            )
        return cls(
            spec,
            titles,
            (weights[0], weights[1], weights[2]),
            int(config["candidates"]),
            neighbours,
            session,
            version,
        )

    @classmethod
    def load(cls, version: ModelVersion, *, threads: int = 1) -> Ranker:
        return cls.from_dir(version.path, threads=threads, version=version.version)

    def predict(self, user: UserInputs, title_ids: Sequence[str], retrieval: F32) -> F32:
        """[n, 3] probabilities for ``user`` (one row, or one row per title) x ``title_ids``,
        the member's candidate list in retrieval order (best first) with its scores."""
        n = len(title_ids)
        rows = np.zeros(n, np.int64) if user.dense.shape[0] == 1 else np.arange(n, dtype=np.int64)
        users = user.take(rows)
        candidates = self.spec.title_index(title_ids)
        titles = self.titles.take(candidates)
        # Item-neighbour evidence from the member's history (one member: one history row).
        neighbour = self.neighbours.scores(user.history[0], candidates)
        # candidates come best first: their rank is their position
        cross = cross_features(
            users, titles, retrieval.astype(np.float32), neighbour_score=neighbour
        )
        (out,) = self._session.run(
            ["probabilities"],
            {
                "user_dense": users.dense,
                "user_cat": users.cat,
                "title": titles.title,
                "title_dense": titles.dense,
                "cross": cross,
            },
        )
        return np.asarray(out, np.float32)

    def combined(
        self, probabilities: F32, weights: tuple[float, float, float] | None = None
    ) -> npt.NDArray[np.float64]:
        """V per row: ``weights`` (an experiment's), else the version's own."""
        w = np.asarray(self.weights if weights is None else weights, np.float64)
        return np.asarray(probabilities.astype(np.float64) @ w)


def recommend(
    retrieval: Retrieval,
    ranker: Ranker | None,
    users: UserInputs,
    exclude: Sequence[Collection[str]],
    *,
    k: int,
) -> list[list[tuple[str, float]]]:
    """Top ``k`` (title id, score) per member: FAISS candidates from the user tower (the
    ranker's candidate count, or ``k`` without a ranker), then the ranker's combined score.
    Titles of ``exclude[i]`` are never returned to member i."""
    vectors = retrieval.tower.embed(users)
    wanted = max(k, ranker.candidates) if ranker is not None else k
    candidates = retrieval.index.search(vectors, wanted, exclude)
    if ranker is None:
        return [c[:k] for c in candidates]
    out: list[list[tuple[str, float]]] = []
    for i, found in enumerate(candidates):
        if not found:
            out.append([])
            continue
        ids = [t for t, _ in found]
        scores = np.asarray([s for _, s in found], np.float32)
        value = ranker.combined(ranker.predict(users.take(np.asarray([i])), ids, scores))
        order = np.argsort(-value, kind="stable")[:k]
        out.append([(ids[j], float(value[j])) for j in order])
    return out
