"""The RankerService servicer and the app :func:`recsys.serving.server.serve` runs.

One call scores all candidates in one onnxruntime run. Title inputs come from the ranker
version's own table (``title_features.npy``, the values it was trained with), in memory: no call
per title. V = w_play P(play) + w_complete P(complete) + w_rate P(rate_high) with the call's
weights, or the version's own when the call sends none.
"""

from __future__ import annotations

import math

import grpc
import numpy as np

from recsys.config import Settings
from recsys.models.inference import Ranker
from recsys.models.registry import ModelRegistry, ModelVersion
from recsys.models.vectorize import vectorize_users
from recsys.ranker.v1 import ranker_pb2 as pb
from recsys.ranker.v1 import ranker_pb2_grpc as pb_grpc
from recsys.serving.errors import check_id, check_ids, invalid
from recsys.serving.features import user_columns
from recsys.serving.handler import Deadline, rpc
from recsys.serving.inference import infer
from recsys.serving.metrics import INFERENCE
from recsys.serving.reload import CurrentVersion, PinnedVersions

__all__ = ["RankerApp", "RankerServicer", "objective_weights"]

SERVICE = "ranker"
MODEL = "ranker"
_INFER = INFERENCE.labels(service=SERVICE, model=MODEL)


def objective_weights(
    request: pb.RankRequest, default: tuple[float, float, float]
) -> tuple[float, float, float]:
    """The call's weights, or ``default`` when it sends none (all zero)."""
    w = request.weights
    weights = (float(w.play), float(w.complete), float(w.rate_high))
    if not any(weights):
        return default
    for name, value in zip(("play", "complete", "rate_high"), weights, strict=True):
        if not math.isfinite(value) or value < 0:
            raise invalid(f"weights.{name} is {value}; weights are finite and not negative")
    return weights


class RankerServicer(pb_grpc.RankerServiceServicer):
    def __init__(self, settings: Settings, models: PinnedVersions[Ranker]) -> None:
        self._max = settings.ranker.max_candidates
        self._models = models

    @rpc(SERVICE, "Rank")
    async def Rank(
        self, request: pb.RankRequest, context: grpc.aio.ServicerContext
    ) -> pb.RankResponse:
        check_id(request.user_id, "user_id")
        if not request.title_ids:
            raise invalid("title_ids is empty: send the candidates to rank")
        ids = check_ids(request.title_ids, "title_ids", limit=self._max)
        n = len(ids)
        if request.retrieval_scores and len(request.retrieval_scores) != n:
            raise invalid(
                f"retrieval_scores has {len(request.retrieval_scores)} values for {n} title_ids"
            )
        scores = (
            np.asarray(request.retrieval_scores, np.float32)
            if request.retrieval_scores
            else np.zeros(n, np.float32)
        )
        if not np.isfinite(scores).all():
            raise invalid("retrieval_scores holds a NaN or an infinity")
        deadline = Deadline(context)
        version, ranker = await self._models.get(request.model_version)
        weights = objective_weights(request, ranker.weights)
        user = vectorize_users(ranker.spec, user_columns(request.features.features), n=1)
        deadline.check("scoring")
        probabilities = infer(_INFER, ranker.predict, user, ids, scores)
        value = ranker.combined(probabilities, weights)
        order = np.argsort(-value, kind="stable")
        if request.limit:
            order = order[: request.limit]
        picked = probabilities[order]
        return pb.RankResponse(
            title_ids=[ids[i] for i in order.tolist()],
            scores=value[order].tolist(),
            p_play=picked[:, 0].tolist(),
            p_complete=picked[:, 1].tolist(),
            p_rate_high=picked[:, 2].tolist(),
            model_version=version,
            degraded=False,
        )


class RankerApp:
    service_names = (pb.DESCRIPTOR.services_by_name["RankerService"].full_name,)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        registry = ModelRegistry.from_settings(settings.models)
        threads = settings.serving.onnx_threads

        def load(version: ModelVersion) -> Ranker:
            return Ranker.load(version, threads=threads)

        self.current: CurrentVersion[Ranker] = CurrentVersion(
            registry, MODEL, load, service=SERVICE
        )
        models = PinnedVersions(self.current, size=settings.ranker.loaded_versions)
        self.servicer = RankerServicer(settings, models)

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_RankerServiceServicer_to_server(self.servicer, server)

    async def start(self) -> None:
        await self.current.load_initial(timeout_s=self._settings.serving.startup_timeout_s)

    async def run(self) -> None:
        await self.current.watch(interval_s=self._settings.serving.reload_interval_s)

    async def close(self) -> None:
        return None
