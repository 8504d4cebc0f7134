"""ONNX export of the user tower and the ranker (torch's dynamo exporter), with a parity check
against torch on real rows, and the FAISS index of the title vectors.

    export_user_tower(model.user, spec, path, sample)     # -> max abs diff on ``sample``
    export_ranker(ranker, path, sample_feeds)

Both graphs take a variable batch (``dynamic_shapes`` on dimension 0 of every input) and are
exported in eval mode (dropout off). Parity is measured by running the exported file with
:func:`recsys.models.inference.onnx_session`, the session serving uses.
"""

from __future__ import annotations

import io
import logging
import warnings
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsys.models.inference import onnx_session
from recsys.models.vectorize import UserInputs
from recsys_pipelines.learning.ranker import MultiTaskRanker
from recsys_pipelines.learning.two_tower import UserTower

__all__ = ["PARITY_TOLERANCE", "ParityError", "export_ranker", "export_user_tower"]

PARITY_TOLERANCE = 1e-4
_USER_INPUTS = ("history", "user_dense", "user_cat")
_RANKER_INPUTS = ("user_dense", "user_cat", "title", "title_dense", "cross")


class ParityError(RuntimeError):
    """The exported graph does not compute what the torch model does."""


def _export(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    names: tuple[str, ...],
    output: str,
    path: Path,
) -> None:
    module.eval()
    batch = torch.export.Dim("batch", min=1, max=1_000_000)
    dynamic = {name: {0: batch} for name in names}
    # The exporter is chatty (progress prints, deprecation warnings of its dependencies).
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(
            module,
            args,
            input_names=list(names),
            output_names=[output],
            dynamic_shapes=dynamic,
            dynamo=True,
            external_data=False,
        )
        assert program is not None
        program.save(str(path))


def _parity(
    path: Path, module: torch.nn.Module, feeds: dict[str, np.ndarray[Any, Any]], output: str
) -> float:
    session = onnx_session(path)
    (got,) = session.run([output], feeds)
    with torch.no_grad():
        want = module(*(torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values())).numpy()
    diff = float(np.max(np.abs(np.asarray(got) - want))) if want.size else 0.0
    if not diff <= PARITY_TOLERANCE:
        raise ParityError(
            f"{path.name}: ONNX differs from torch by {diff:.3g} > {PARITY_TOLERANCE}"
        )
    return diff


def export_user_tower(tower: UserTower, path: Path, sample: UserInputs) -> float:
    """Write the user tower to ``path``; returns the max abs difference on ``sample``."""
    feeds = sample.as_feeds()
    args = tuple(torch.from_numpy(feeds[name]) for name in _USER_INPUTS)
    _export(tower, args, _USER_INPUTS, "user_embedding", path)
    return _parity(path, tower, {name: feeds[name] for name in _USER_INPUTS}, "user_embedding")


def export_ranker(ranker: MultiTaskRanker, path: Path, sample: dict[str, Any]) -> float:
    """Write the ranker (probabilities out) to ``path``; returns the max abs difference."""
    feeds = {name: np.ascontiguousarray(sample[name]) for name in _RANKER_INPUTS}
    args = tuple(torch.from_numpy(feeds[name]) for name in _RANKER_INPUTS)
    _export(ranker, args, _RANKER_INPUTS, "probabilities", path)
    return _parity(path, ranker, feeds, "probabilities")
