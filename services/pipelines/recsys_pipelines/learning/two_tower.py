"""The two-tower retrieval model (torch; training only).

User tower: the member's recent titles (an embedding bag with learned recency weights) with the
batch and real-time user features (dense vector + country / plan / device embeddings) -> an MLP
-> a unit vector. Title tower: the title's id embedding with its content features -> an MLP ->
a unit vector. Score = cosine / temperature, so the FAISS inner-product index of the title
vectors ranks exactly as the model does.

Loss, two choices (``TwoTowerConfig.loss``), compared in docs/learning.md:

- ``full``: softmax over the whole catalog (our catalogs are small enough: every step runs the
  title tower over all titles), no sampling bias to correct;
- ``in_batch``: in-batch sampled softmax with the logQ correction of Yi et al. (RecSys 2019):
  logits minus log(sampling probability of the title), the probability being its share of the
  training interactions; the other occurrences of a row's own title in the batch are masked.
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

from recsys.models.vectorize import FeatureSpec, TitleInputs, UserInputs

__all__ = [
    "TitleTower",
    "TwoTower",
    "TwoTowerConfig",
    "UserTower",
    "title_embeddings",
    "train_two_tower",
    "user_embeddings",
]


@dataclass(frozen=True)
class TwoTowerConfig:
    dim: int = 64
    hidden: int = 256
    cat_dim: int = 8
    temperature: float = 0.07
    loss: str = "in_batch"  # or "full"
    # Training histories: "previous" (titles before the target) or "others" (a sample of the
    # member's other titles); chosen on the validation split (docs/learning.md).
    history: str = "previous"
    history_dropout: float = 0.0  # "others" only: each other title dropped with this probability
    epochs: int = 4
    batch_size: int = 512
    learning_rate: float = 3e-3
    weight_decay: float = 1e-6
    dropout: float = 0.1
    seed: int = 0

    def params(self) -> dict[str, Any]:
        return asdict(self)


class UserTower(nn.Module):
    def __init__(self, spec: FeatureSpec, config: TwoTowerConfig) -> None:
        super().__init__()
        self.history = nn.Embedding(spec.n_titles, config.dim, padding_idx=0)
        nn.init.normal_(self.history.weight, std=0.05)
        # Recency: a learned weight per position of the (newest first) sequence.
        self.position = nn.Parameter(torch.zeros(spec.history_length))
        self.cats = nn.ModuleList(
            nn.Embedding(size, config.cat_dim) for size in spec.user_cat_sizes
        )
        width = config.dim + spec.user_dense_dim + config.cat_dim * len(spec.user_cat_sizes)
        self.mlp = nn.Sequential(
            nn.Linear(width, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.dim),
        )

    def forward(
        self, history: torch.Tensor, user_dense: torch.Tensor, user_cat: torch.Tensor
    ) -> torch.Tensor:
        mask = (history > 0).to(user_dense.dtype)
        weights = mask * torch.exp(self.position)[None, :]
        pooled = (self.history(history) * weights[:, :, None]).sum(dim=1)
        pooled = pooled / weights.sum(dim=1, keepdim=True).clamp(min=1e-6)
        cats = [emb(user_cat[:, i]) for i, emb in enumerate(self.cats)]
        x = torch.cat([pooled, user_dense, *cats], dim=1)
        return F.normalize(pooled + self.mlp(x), dim=1)


class TitleTower(nn.Module):
    def __init__(self, spec: FeatureSpec, config: TwoTowerConfig) -> None:
        super().__init__()
        self.ids = nn.Embedding(spec.n_titles, config.dim)
        nn.init.normal_(self.ids.weight, std=0.05)
        self.mlp = nn.Sequential(
            nn.Linear(config.dim + spec.title_dense_dim, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, config.dim),
        )

    def forward(self, title: torch.Tensor, title_dense: torch.Tensor) -> torch.Tensor:
        ids = self.ids(title)
        return F.normalize(ids + self.mlp(torch.cat([ids, title_dense], dim=1)), dim=1)


class TwoTower(nn.Module):
    def __init__(self, spec: FeatureSpec, config: TwoTowerConfig) -> None:
        super().__init__()
        self.config = config
        self.user = UserTower(spec, config)
        self.title = TitleTower(spec, config)


def _tensors(inputs: UserInputs, rows: npt.NDArray[np.int64]) -> tuple[torch.Tensor, ...]:
    return (
        torch.from_numpy(inputs.history[rows]),
        torch.from_numpy(inputs.dense[rows]),
        torch.from_numpy(inputs.cat[rows]),
    )


def title_embeddings(model: TwoTower, titles: TitleInputs) -> npt.NDArray[np.float32]:
    """Unit vectors of ``titles`` (eval mode, no gradient)."""
    model.eval()
    with torch.no_grad():
        out = model.title(torch.from_numpy(titles.title), torch.from_numpy(titles.dense))
    return np.asarray(out.numpy(), np.float32)


def user_embeddings(model: TwoTower, users: UserInputs) -> npt.NDArray[np.float32]:
    model.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, users.history.shape[0], 4096):
            rows = np.arange(start, min(start + 4096, users.history.shape[0]))
            parts.append(model.user(*_tensors(users, rows)).numpy())
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), np.float32)


def train_two_tower(
    spec: FeatureSpec,
    users: UserInputs,
    targets: npt.NDArray[np.int64],
    titles: TitleInputs,
    config: TwoTowerConfig,
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> TwoTower:
    """Fit on examples (``users[i]`` played ``targets[i]``, a spec title index); ``titles``
    holds every catalog title in spec order (index 1..n)."""
    if targets.shape[0] == 0:
        raise ValueError("no training examples")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = TwoTower(spec, config)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    all_ids = torch.from_numpy(titles.title)
    all_dense = torch.from_numpy(titles.dense)
    counts = np.bincount(targets, minlength=spec.n_titles).astype(np.float64)
    log_q = torch.from_numpy(np.log((counts + 1.0) / (counts.sum() + spec.n_titles))).float()
    n = targets.shape[0]
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
            u = model.user(*_tensors(users, rows))
            target = torch.from_numpy(targets[rows])
            if config.loss == "full":
                # titles are rows 0.. of the spec order; row 0 (unknown) is never a target
                v = model.title(all_ids, all_dense)
                logits = u @ v.T / config.temperature
                logits[:, 0] = -1e9
                loss = F.cross_entropy(logits, target)
            else:
                v = model.title(all_ids[target], all_dense[target])
                logits = u @ v.T / config.temperature - log_q[target][None, :]
                same = target[:, None] == target[None, :]
                eye = torch.eye(len(rows), dtype=torch.bool)
                logits = logits.masked_fill(same & ~eye, -1e9)
                loss = F.cross_entropy(logits, torch.arange(len(rows)))
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(rows)
        progress(
            f"two-tower epoch {epoch + 1}/{config.epochs}: loss {total / n:.4f} "
            f"({time.perf_counter() - started:.1f} s)"
        )
    model.eval()
    return model
