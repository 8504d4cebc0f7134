"""Learning: interactions and the held-out split, baselines (popularity, EASE, ALS, BPR),
metrics, the two-tower retrieval model and the multi-task ranker (torch), ONNX export, FAISS,
and the entry point that publishes to the model registry (docs/learning.md).

Importing this package is light; torch and implicit load when a model is trained.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recsys_pipelines.learning.fit import LearningConfig
    from recsys_pipelines.learning.train import TrainingSummary, train_and_register

__all__ = ["LearningConfig", "TrainingSummary", "train_and_register"]


def __getattr__(name: str) -> Any:
    if name in ("TrainingSummary", "train_and_register"):
        from recsys_pipelines.learning import train

        return getattr(train, name)
    if name == "LearningConfig":
        from recsys_pipelines.learning import fit

        return fit.LearningConfig
    raise AttributeError(name)
