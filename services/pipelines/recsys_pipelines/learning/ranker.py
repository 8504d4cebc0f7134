"""The multi-task ranker (torch; training only): P(play), P(complete), P(rate_high).

Inputs per (member, candidate title): the member's dense features and country / plan / device
embeddings, the title's id embedding and content features, and the cross features of
:func:`recsys.models.vectorize.cross_features` (the two-tower score among them). One shared MLP
(input -> 256 -> 128) and three logits; the ONNX graph returns the three probabilities. Each head
is a binary cross-entropy on its label; completing and rating high imply playing, so the labels
are nested.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F

from recsys.models.vectorize import CROSS_DIM, FeatureSpec

__all__ = ["CROSS_DIM", "MultiTaskRanker", "RankerConfig", "RankerData", "train_ranker"]

TASKS = ("play", "complete", "rate_high")


@dataclass(frozen=True)
class RankerConfig:
    hidden: tuple[int, int] = (256, 128)
    # A title-id embedding (0: none) memorises which titles were played in the labelled period;
    # measured, it does not carry over to the next period (docs/learning.md), so it is off.
    title_dim: int = 0
    cat_dim: int = 8
    epochs: int = 4
    batch_size: int = 1024
    learning_rate: float = 2e-3
    weight_decay: float = 1e-6
    task_weights: tuple[float, float, float] = (1.0, 0.5, 0.5)
    seed: int = 0

    def params(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RankerData:
    """Aligned rows: member inputs, title inputs, cross features and the three labels."""

    user_dense: npt.NDArray[np.float32]
    user_cat: npt.NDArray[np.int64]
    title: npt.NDArray[np.int64]
    title_dense: npt.NDArray[np.float32]
    cross: npt.NDArray[np.float32]
    labels: npt.NDArray[np.float32]  # [n, 3]

    def __len__(self) -> int:
        return int(self.title.shape[0])

    def feeds(self, rows: npt.NDArray[np.int64] | slice = slice(None)) -> dict[str, Any]:
        return {
            "user_dense": self.user_dense[rows],
            "user_cat": self.user_cat[rows],
            "title": self.title[rows],
            "title_dense": self.title_dense[rows],
            "cross": self.cross[rows],
        }


class MultiTaskRanker(nn.Module):
    def __init__(self, spec: FeatureSpec, config: RankerConfig) -> None:
        super().__init__()
        self.cats = nn.ModuleList(
            nn.Embedding(size, config.cat_dim) for size in spec.user_cat_sizes
        )
        self.title = nn.Embedding(spec.n_titles, max(1, config.title_dim))
        nn.init.normal_(self.title.weight, std=0.01)
        self.use_title_id = config.title_dim > 0
        width = (
            spec.user_dense_dim
            + config.cat_dim * len(spec.user_cat_sizes)
            + (config.title_dim if config.title_dim > 0 else 0)
            + spec.title_dense_dim
            + CROSS_DIM
        )
        first, second = config.hidden
        self.mlp = nn.Sequential(
            nn.Linear(width, first),
            nn.ReLU(),
            nn.Linear(first, second),
            nn.ReLU(),
            nn.Linear(second, len(TASKS)),
        )
        # Wide part: the cross features straight to the logits, so the retrieval order is
        # easy to keep and the MLP learns corrections to it.
        self.wide = nn.Linear(CROSS_DIM, len(TASKS))

    def logits(
        self,
        user_dense: torch.Tensor,
        user_cat: torch.Tensor,
        title: torch.Tensor,
        title_dense: torch.Tensor,
        cross: torch.Tensor,
    ) -> torch.Tensor:
        cats = [emb(user_cat[:, i]) for i, emb in enumerate(self.cats)]
        ids = [self.title(title)] if self.use_title_id else []
        x = torch.cat([user_dense, *cats, *ids, title_dense, cross], dim=1)
        out: torch.Tensor = self.mlp(x) + self.wide(cross)
        return out

    def forward(
        self,
        user_dense: torch.Tensor,
        user_cat: torch.Tensor,
        title: torch.Tensor,
        title_dense: torch.Tensor,
        cross: torch.Tensor,
    ) -> torch.Tensor:
        return torch.sigmoid(self.logits(user_dense, user_cat, title, title_dense, cross))


def _torch(feeds: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feeds.items()}


def predict(model: MultiTaskRanker, data: RankerData) -> npt.NDArray[np.float32]:
    model.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(data), 8192):
            rows = slice(start, start + 8192)
            parts.append(model(**_torch(data.feeds(rows))).numpy())
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 3), np.float32)


def train_ranker(
    spec: FeatureSpec,
    data: RankerData,
    config: RankerConfig,
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> MultiTaskRanker:
    if len(data) == 0:
        raise ValueError("no ranker examples")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = MultiTaskRanker(spec, config)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    weights = torch.tensor(config.task_weights)
    n = len(data)
    steps = math.ceil(n / config.batch_size) * config.epochs
    # Linear decay to zero over the run: stable for tiny runs as for long ones.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1.0 - step / max(1, steps))
    )
    for epoch in range(config.epochs):
        model.train()
        started = time.perf_counter()
        order = rng.permutation(n)
        total = 0.0
        for start in range(0, n, config.batch_size):
            rows = order[start : start + config.batch_size]
            logits = model.logits(**_torch(data.feeds(rows)))
            labels = torch.from_numpy(data.labels[rows])
            loss = (
                F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(0)
                * weights
            ).sum()
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(rows)
        progress(
            f"ranker epoch {epoch + 1}/{config.epochs}: loss {total / n:.4f} "
            f"({time.perf_counter() - started:.1f} s)"
        )
    model.eval()
    return model
