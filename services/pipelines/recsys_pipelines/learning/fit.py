"""Train, tune and evaluate every model on the held-out split, then refit what is published.

    result = fit_and_evaluate(data, LearningConfig(), workdir, progress=print)

1. Split the interactions (per-member temporal holdout, :func:`temporal_holdout`).
2. Baselines: popularity; EASE, ALS and BPR each tuned on a validation split carved out of the
   training part the same way (the best NDCG@K wins), refitted on the whole training part.
3. The two-tower on the training part, exported to ONNX + FAISS, evaluated **through the serving
   code path** (:func:`recsys.models.inference.recommend`): retrieval alone.
4. The ranker on examples of the training part (positives, uniform and retrieval-hard
   negatives), exported, evaluated as retrieval + ranker through the same path.
5. Both models refitted on every interaction (the newest ones are the most telling), exported
   for publishing. Metrics in the table are those of step 3-4 (the refit has no held-out data).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recsys.models.inference import (
    INDEX_FILE,
    NEIGHBOURS_FILE,
    RANKER_CONFIG_FILE,
    RANKER_FILE,
    TITLE_FEATURES_FILE,
    TITLE_IDS_FILE,
    USER_TOWER_FILE,
    Ranker,
    Retrieval,
    TitleIndex,
    recommend,
)
from recsys.models.vectorize import (
    SPEC_FILE,
    FeatureSpec,
    ItemNeighbours,
    TitleInputs,
    UserInputs,
    cross_features,
)
from recsys_pipelines.learning.baselines import (
    ALS,
    BPR,
    Popularity,
    Scorer,
    ease_path,
    ease_weights,
)
from recsys_pipelines.learning.baselines import (
    recommend as recommend_baseline,
)
from recsys_pipelines.learning.evaluation import EvalRow
from recsys_pipelines.learning.examples import (
    NoContext,
    UserContext,
    catalog_inputs,
    make_spec,
    member_inputs,
    sequence_examples,
)
from recsys_pipelines.learning.interactions import Interactions, temporal_holdout
from recsys_pipelines.learning.lakedata import LearningData
from recsys_pipelines.learning.metrics import Scores, evaluate
from recsys_pipelines.learning.ranker import RankerConfig, RankerData, train_ranker
from recsys_pipelines.learning.two_tower import (
    TwoTowerConfig,
    title_embeddings,
    train_two_tower,
)

__all__ = ["FitResult", "LearningConfig", "Published", "fit_and_evaluate", "split_description"]


@dataclass(frozen=True)
class LearningConfig:
    k: int = 10
    holdout_fraction: float = 0.2
    min_interactions: int = 3
    history_length: int = 200
    two_tower: TwoTowerConfig = field(default_factory=TwoTowerConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    ranker_weights: tuple[float, float, float] = (1.0, 0.5, 0.5)
    candidates: int = 100
    uniform_negatives: int = 2
    hard_negatives: int = 2
    max_ranker_positives: int = 200_000
    max_eval_users: int = 20_000
    # Members' batch features are used only when the daily snapshots cover at least this share
    # of the interactions (point in time); otherwise they are read as defaults (FeatureSpec).
    min_feature_coverage: float = 0.9
    # Item-neighbour cross feature of the ranker (ItemNeighbours): EASE's strongest neighbours
    # per title (0 = off), with the EASE baseline's tuned lambda (or this one without baselines).
    neighbours: int = 64
    neighbour_lambda: float = 500.0
    # Two-tower variants (history mode, epochs) tried on the validation split; the best
    # NDCG@K is trained on the training part (evaluated) and on everything (published).
    two_tower_variants: tuple[tuple[str, int], ...] = (("previous", 4), ("others", 4))
    ease_lambdas: tuple[float, ...] = (50.0, 200.0, 500.0, 1000.0, 2000.0)
    ease_max_titles: int = 6000
    als_grid: tuple[tuple[int, float, float], ...] = (  # factors, regularization, alpha
        (32, 1.0, 10.0),
        (32, 1.0, 40.0),
        (64, 1.0, 20.0),
        (64, 10.0, 40.0),
        (128, 10.0, 20.0),
    )
    bpr_grid: tuple[tuple[int, float, float], ...] = (  # factors, learning rate, regularization
        (32, 0.01, 0.01),
        (64, 0.01, 0.01),
        (64, 0.01, 0.05),
        (128, 0.005, 0.01),
    )
    baselines: bool = True
    refit: bool = True
    seed: int = 0

    def params(self) -> dict[str, Any]:
        return asdict(self)


def split_description(config: LearningConfig) -> str:
    return (
        f"per-member temporal holdout: the latest {config.holdout_fraction:.0%} (at least one) "
        f"of the interactions of each member with >= {config.min_interactions}; "
        "already-played titles excluded from every list"
    )


@dataclass
class Published:
    """Files of one exported model pair, ready to be copied into registry versions."""

    two_tower_dir: Path
    ranker_dir: Path
    parity: dict[str, float]


@dataclass
class FitResult:
    rows: list[EvalRow]
    spec: FeatureSpec
    published: Published
    seconds: dict[str, float]
    train_interactions: int
    test_interactions: int
    eval_users: int


@contextmanager
def _timed(
    seconds: dict[str, float], stage: str, progress: Callable[[str], None]
) -> Iterator[None]:
    started = time.perf_counter()
    yield
    seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - started
    progress(f"learning: {stage} {time.perf_counter() - started:.1f} s")


@dataclass
class _Split:
    train: Interactions
    test: Interactions
    users: npt.NDArray[np.int64]  # members evaluated
    relevant: list[npt.NDArray[np.int32]]
    at_us: npt.NDArray[np.int64]  # the instant each member's held-out part starts


def _split(data: Interactions, config: LearningConfig) -> _Split:
    train, test = temporal_holdout(
        data, fraction=config.holdout_fraction, min_interactions=config.min_interactions
    )
    users = np.unique(test.user).astype(np.int64)
    if users.shape[0] > config.max_eval_users:
        rng = np.random.default_rng(config.seed)
        users = np.sort(rng.choice(users, config.max_eval_users, replace=False))
    held = test.per_user()
    first = np.full(data.n_users, 0, np.int64)
    # rows are sorted by member then time: the first row of each member is its earliest
    starts = np.searchsorted(test.user, np.arange(data.n_users))
    present = starts < len(test)
    first[present] = test.time_us[starts[present]]
    return _Split(train, test, users, [held[u] for u in users], first[users])


def _played(split: _Split) -> list[set[str]]:
    """Per evaluated member of ``split``: the titles of its training part (never recommended)."""
    per_user = split.train.per_user()
    titles = split.train.titles
    return [{titles[t] for t in per_user[int(u)].tolist()} for u in split.users]


def _served_scores(
    retrieval: Retrieval, ranker: Ranker | None, split: _Split, inputs: UserInputs, k: int
) -> Scores:
    """The metrics of the lists the serving path (:func:`recommend`) gives ``split``'s members
    (``inputs``: theirs, in order) against their held-out titles."""
    lists = recommend(retrieval, ranker, inputs, _played(split), k=k)
    position = {t: i for i, t in enumerate(split.train.titles)}
    top = np.full((len(lists), k), -1, np.int64)
    for i, found in enumerate(lists):
        for j, (title_id, _) in enumerate(found[:k]):
            top[i, j] = position[title_id]
    return evaluate(top, split.relevant, split.train.title_counts(), k=k)


def _score_baseline(
    name: str, model: Scorer, split: _Split, k: int, params: dict[str, Any], seconds: float
) -> EvalRow:
    top = recommend_baseline(model, split.train, split.users, k=k)
    scores = evaluate(top, split.relevant, split.train.title_counts(), k=k)
    return EvalRow(name, scores, params, seconds)


def _tune(fits: Iterator[tuple[dict[str, Any], Scorer]], valid: _Split, k: int) -> dict[str, Any]:
    best: tuple[float, dict[str, Any]] | None = None
    for params, model in fits:
        top = recommend_baseline(model, valid.train, valid.users, k=k)
        ndcg = evaluate(top, valid.relevant, valid.train.title_counts(), k=k).ndcg
        if best is None or ndcg > best[0]:
            best = (ndcg, params)
    assert best is not None
    return best[1]


def _baselines(
    split: _Split, config: LearningConfig, progress: Callable[[str], None]
) -> list[EvalRow]:
    k = config.k
    rows = []
    started = time.perf_counter()
    rows.append(_score_baseline("popularity", Popularity().fit(split.train), split, k, {}, 0.0))
    progress(f"learning: popularity {time.perf_counter() - started:.1f} s")
    valid = _split(split.train, config)
    if valid.users.shape[0] == 0:
        valid = split  # too little data to carve a validation part: tune on the split itself
    # EASE: one eigendecomposition per training part, a matrix product per lambda.
    started = time.perf_counter()
    lam = _tune(
        (
            ({"lambda": e.lam}, e)
            for e in ease_path(valid.train, config.ease_lambdas, max_titles=config.ease_max_titles)
        ),
        valid,
        k,
    )["lambda"]
    ease = next(ease_path(split.train, [lam], max_titles=config.ease_max_titles))
    rows.append(
        _score_baseline(
            "ease",
            ease,
            split,
            k,
            {"lambda": lam, "max_titles": config.ease_max_titles},
            time.perf_counter() - started,
        )
    )
    progress(f"learning: ease (lambda {lam:g}) {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    best = _tune(
        (
            (
                {"factors": f, "regularization": r, "alpha": a},
                ALS(factors=f, regularization=r, alpha=a, seed=config.seed).fit(valid.train),
            )
            for f, r, a in config.als_grid
        ),
        valid,
        k,
    )
    als = ALS(**best, seed=config.seed).fit(split.train)
    rows.append(_score_baseline("als", als, split, k, best, time.perf_counter() - started))
    progress(f"learning: als {best} {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    best = _tune(
        (
            (
                {"factors": f, "learning_rate": lr, "regularization": r},
                BPR(factors=f, learning_rate=lr, regularization=r, seed=config.seed).fit(
                    valid.train
                ),
            )
            for f, lr, r in config.bpr_grid
        ),
        valid,
        k,
    )
    bpr = BPR(**best, seed=config.seed).fit(split.train)
    rows.append(_score_baseline("bpr", bpr, split, k, best, time.perf_counter() - started))
    progress(f"learning: bpr {best} {time.perf_counter() - started:.1f} s")
    return rows


# --- the learned models ------------------------------------------------------------------------


def item_neighbours(
    seen: Interactions, spec: FeatureSpec, config: LearningConfig, lam: float
) -> ItemNeighbours:
    """EASE's weights over ``seen`` (the ``ease_max_titles`` most played titles), cut to the
    ``config.neighbours`` strongest incoming ones of each title, in spec indices."""
    n, m = spec.n_titles, config.neighbours
    if m <= 0 or len(seen) == 0:
        return ItemNeighbours.empty(n)
    kept, weights = ease_weights(seen, lam, max_titles=config.ease_max_titles)
    m = min(m, kept.shape[0])
    top = np.argpartition(-weights, m - 1, axis=0)[:m].T  # [kept, m] strongest i per column j
    index = np.zeros((n, m), np.int64)
    weight = np.zeros((n, m), np.float32)
    columns = np.arange(kept.shape[0])
    index[kept + 1] = kept[top] + 1  # interactions index + 1 = spec index
    weight[kept + 1] = weights[top, columns[:, None]]
    return ItemNeighbours(index, weight)


def _candidate_data(
    retrieval: Retrieval,
    split: _Split,
    spec: FeatureSpec,
    catalog: TitleInputs,
    context: UserContext,
    config: LearningConfig,
    neighbours: ItemNeighbours,
) -> RankerData:
    """Ranker rows as serving sees them: for each member of ``split``, the retrieval model's
    top candidates (from their training part, already-played titles excluded), labelled by
    what the member went on to do in the held-out part (played it; completed it; rated it 4+).
    ``retrieval`` must not have seen the held-out part."""
    inputs = member_inputs(split.train, split.users, spec, context, split.at_us)
    found = retrieval.index.search(retrieval.tower.embed(inputs), config.candidates, _played(split))
    later: dict[tuple[int, int], tuple[float, float, float]] = {}
    test = split.test
    for u, t, done, rating in zip(
        test.user.tolist(),
        test.title.tolist(),
        test.completed.tolist(),
        test.rating.tolist(),
        strict=True,
    ):
        later[(u, t + 1)] = (1.0, float(done), float(rating >= 4))
    user_rows: list[int] = []
    title_rows: list[int] = []
    ranks: list[int] = []
    scores: list[float] = []
    neighbour: list[npt.NDArray[np.float32]] = []
    labels: list[tuple[float, float, float]] = []
    for i, candidates in enumerate(found):
        member = int(split.users[i])
        index = spec.title_index([t for t, _ in candidates])
        neighbour.append(neighbours.scores(inputs.history[i], index))
        for rank, (title, (_, score)) in enumerate(zip(index.tolist(), candidates, strict=True)):
            ranks.append(rank)
            user_rows.append(i)
            title_rows.append(title)
            scores.append(score)
            labels.append(later.get((member, title), (0.0, 0.0, 0.0)))
    u = np.asarray(user_rows, np.int64)
    users = inputs.take(u)
    chosen = catalog.take(np.asarray(title_rows, np.int64))
    return RankerData(
        users.dense,
        users.cat,
        chosen.title,
        chosen.dense,
        cross_features(
            users,
            chosen,
            np.asarray(scores, np.float32),
            np.asarray(ranks, np.int64),
            np.concatenate(neighbour) if neighbour else np.zeros(0, np.float32),
        ),
        np.asarray(labels, np.float32).reshape(-1, 3),
    )


def _train_retrieval(
    seen: Interactions,
    spec: FeatureSpec,
    catalog: TitleInputs,
    context: UserContext,
    config: LearningConfig,
    out: Path,
    progress: Callable[[str], None],
    seconds: dict[str, float],
) -> float:
    """Train the two-tower on ``seen``, export it into ``out`` (ONNX user tower, FAISS index,
    title ids, spec); returns the ONNX parity (max abs difference)."""
    from recsys_pipelines.learning.export import export_user_tower

    out.mkdir(parents=True, exist_ok=True)
    with _timed(seconds, "two_tower", progress):
        examples = sequence_examples(
            seen,
            spec,
            context,
            history=config.two_tower.history,
            dropout=config.two_tower.history_dropout,
            seed=config.seed,
        )
        model = train_two_tower(
            spec, examples.users, examples.targets, catalog, config.two_tower, progress=progress
        )
    with _timed(seconds, "onnx", progress):
        sample = examples.users.take(np.arange(min(256, len(examples.targets))))
        parity = export_user_tower(model.user, out / USER_TOWER_FILE, sample)
    with _timed(seconds, "faiss", progress):
        vectors = title_embeddings(model, catalog)[1:]
        TitleIndex.build(vectors, list(spec.titles)).save(out / INDEX_FILE, out / TITLE_IDS_FILE)
    (out / SPEC_FILE).write_bytes(spec.to_json())
    return parity


def _train_ranker(
    retrieval_dir: Path,
    split: _Split,
    spec: FeatureSpec,
    catalog: TitleInputs,
    context: UserContext,
    config: LearningConfig,
    out: Path,
    progress: Callable[[str], None],
    seconds: dict[str, float],
    neighbours: tuple[ItemNeighbours, ItemNeighbours],
) -> float:
    """Train the ranker on the candidates of the retrieval model in ``retrieval_dir`` for the
    members of ``split``, export it into ``out``; returns the ONNX parity. ``neighbours``:
    (the table of ``split``'s training part, for its rows; the table published beside it)."""
    from recsys_pipelines.learning.export import export_ranker

    out.mkdir(parents=True, exist_ok=True)
    with _timed(seconds, "ranker", progress):
        retrieval = Retrieval.from_dir(retrieval_dir, threads=2)
        data = _candidate_data(retrieval, split, spec, catalog, context, config, neighbours[0])
        progress(f"learning: ranker rows {len(data)}, played {int(data.labels[:, 0].sum())}")
        ranker = train_ranker(spec, data, config.ranker, progress=progress)
    with _timed(seconds, "onnx", progress):
        parity = export_ranker(ranker, out / RANKER_FILE, data.feeds(slice(0, 512)))
    (out / SPEC_FILE).write_bytes(spec.to_json())
    np.save(out / TITLE_FEATURES_FILE, catalog.dense, allow_pickle=False)
    neighbours[1].save(out / NEIGHBOURS_FILE)
    (out / RANKER_CONFIG_FILE).write_bytes(
        json.dumps(
            {"weights": list(config.ranker_weights), "candidates": config.candidates}
        ).encode()
    )
    return parity


def _evaluate_served(
    published: Published, split: _Split, spec: FeatureSpec, context: UserContext, k: int
) -> tuple[Scores, Scores]:
    """Retrieval alone and retrieval + ranker, through the serving code path."""
    retrieval = Retrieval.from_dir(published.two_tower_dir, threads=2)
    ranker = Ranker.from_dir(published.ranker_dir, threads=1)
    inputs = member_inputs(split.train, split.users, spec, context, split.at_us)
    return (
        _served_scores(retrieval, None, split, inputs, k),
        _served_scores(retrieval, ranker, split, inputs, k),
    )


def _choose_two_tower(
    valid: _Split,
    spec: FeatureSpec,
    catalog: TitleInputs,
    context: UserContext,
    config: LearningConfig,
    workdir: Path,
    progress: Callable[[str], None],
    stage: dict[str, float],
    parity: dict[str, float],
) -> tuple[Path, LearningConfig]:
    """Train each two-tower variant on the validation split's training part and keep the one
    with the best NDCG@K on its held-out part (scored through the serving path)."""
    best: tuple[float, Path, LearningConfig] | None = None
    inputs = member_inputs(valid.train, valid.users, spec, context, valid.at_us)
    for history, epochs in config.two_tower_variants:
        variant = replace(
            config, two_tower=replace(config.two_tower, history=history, epochs=epochs)
        )
        out = workdir / f"valid-{history}-{epochs}" / "two_tower"
        parity[f"user_tower (valid, {history})"] = _train_retrieval(
            valid.train, spec, catalog, context, variant, out, progress, stage
        )
        retrieval = Retrieval.from_dir(out, threads=2)
        ndcg = _served_scores(retrieval, None, valid, inputs, config.k).ndcg
        progress(f"learning: two-tower history={history} epochs={epochs}: NDCG {ndcg:.4f}")
        if best is None or ndcg > best[0]:
            best = (ndcg, out, variant)
    if best is None:
        raise ValueError("no two-tower variant to try")
    return best[1], best[2]


def fit_and_evaluate(
    data: LearningData,
    config: LearningConfig,
    workdir: Path,
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> FitResult:
    """Evaluate (validation split -> ranker; training part -> two-tower; both scored on the
    held-out part) then train what is published (two-tower on everything, ranker on the
    candidates of the training-part two-tower labelled by the held-out part)."""
    import torch

    torch.set_num_threads(2)
    seconds: dict[str, float] = {}
    interactions = data.interactions
    context: UserContext = data.context if data.context is not None else NoContext()
    coverage = context.coverage(interactions.time_us)
    batch_features = coverage >= config.min_feature_coverage
    if not batch_features:
        # Training on defaults for most rows and serving real values is a skew the model pays
        # for (on imported history: NDCG@10 0.079 with them, 0.110 without); read none instead.
        progress(
            f"learning: members' batch features off: the daily snapshots cover {coverage:.0%} "
            f"of the interactions (< {config.min_feature_coverage:.0%})"
        )
        context = NoContext()
    spec = make_spec(
        interactions,
        history_length=config.history_length,
        countries=data.countries,
        languages=data.languages,
        batch_features=batch_features,
    )
    catalog = catalog_inputs(spec, data.title_columns)
    with _timed(seconds, "split", progress):
        split = _split(interactions, config)
        valid = _split(split.train, config)
    progress(
        f"learning: {len(split.train)} training and {len(split.test)} held-out interactions, "
        f"{split.users.shape[0]} members evaluated"
    )
    rows: list[EvalRow] = []
    evaluated = split.users.shape[0] > 0
    if evaluated and config.baselines:
        with _timed(seconds, "baselines", progress):
            rows.extend(_baselines(split, config, progress))
    parity: dict[str, float] = {}
    stage: dict[str, float] = {}
    lam = next(
        (float(r.params["lambda"]) for r in rows if r.model == "ease"), config.neighbour_lambda
    )
    tables: dict[str, ItemNeighbours] = {}

    def neighbours_of(seen: Interactions, name: str) -> ItemNeighbours:
        if name not in tables:
            with _timed(stage, "neighbours", progress):
                tables[name] = item_neighbours(seen, spec, config, lam)
        return tables[name]

    def retrieval(seen: Interactions, name: str) -> Path:
        parity[f"user_tower ({name})"] = _train_retrieval(
            seen, spec, catalog, context, config, workdir / name / "two_tower", progress, stage
        )
        return workdir / name / "two_tower"

    def ranker(retrieval_dir: Path, labelled: _Split, name: str, served: str) -> Path:
        """Rows from ``labelled``'s members (with the neighbours of its training part), and the
        neighbours of the interactions ``served`` (what the ranker is evaluated or served with)
        published beside it."""
        seen = {"valid": valid.train, "split": split.train, "all": interactions}
        rows_of = "valid" if labelled is valid else "split" if labelled is split else "all"
        parity[f"ranker ({name})"] = _train_ranker(
            retrieval_dir,
            labelled,
            spec,
            catalog,
            context,
            config,
            workdir / name / "ranker",
            progress,
            stage,
            (
                neighbours_of(seen[rows_of], rows_of),
                neighbours_of(seen[served], served),
            ),
        )
        return workdir / name / "ranker"

    if evaluated:
        # The ranker learns from candidates of a two-tower that has not seen their labels.
        has_valid = valid.users.shape[0] > 0
        if has_valid:
            valid_tt, config = _choose_two_tower(
                valid, spec, catalog, context, config, workdir, progress, stage, parity
            )
            ranker_eval = ranker(valid_tt, valid, "valid", served="split")
        split_tt = retrieval(split.train, "split")
        if not has_valid:
            ranker_eval = ranker(split_tt, split, "split-only", served="split")
        with _timed(seconds, "evaluation", progress):
            alone, ranked = _evaluate_served(
                Published(split_tt, ranker_eval, {}), split, spec, context, config.k
            )
        rows.append(EvalRow("two_tower", alone, config.two_tower.params(), stage["two_tower"]))
        rows.append(
            EvalRow(
                "two_tower+ranker",
                ranked,
                {
                    **config.ranker.params(),
                    "weights": config.ranker_weights,
                    "candidates": config.candidates,
                },
                stage["two_tower"] + stage.get("ranker", 0.0),
            )
        )
        if config.refit:
            published = Published(
                retrieval(interactions, "all"), ranker(split_tt, split, "all", served="all"), parity
            )
        else:
            published = Published(split_tt, ranker_eval, parity)
    else:
        # Nothing can be held out (every member has too few interactions): train on all; the
        # ranker then learns from the candidates' own training interactions, which is weak.
        tt = retrieval(interactions, "all")
        everyone = _Split(
            interactions,
            interactions,
            np.arange(interactions.n_users),
            interactions.per_user(),
            np.zeros(interactions.n_users, np.int64),
        )
        published = Published(tt, ranker(tt, everyone, "all", served="all"), parity)
    for name, value in stage.items():
        seconds[name] = seconds.get(name, 0.0) + value
    published.parity = parity
    return FitResult(
        rows, spec, published, seconds, len(split.train), len(split.test), int(split.users.shape[0])
    )
