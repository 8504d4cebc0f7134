"""The ExperimentsService servicer and the app :func:`recsys.serving.server.serve` runs.

GetAssignments answers from the configuration in memory (a hash per layer, no store read on the
request path) and queues the call's exposures for Kafka and Cassandra (exposures.py).
"""

from __future__ import annotations

import asyncio
import re

import grpc

from recsys.common.v1 import common_pb2
from recsys.config import Settings
from recsys.experiments.v1 import experiments_pb2 as pb
from recsys.experiments.v1 import experiments_pb2_grpc as pb_grpc
from recsys.serving.errors import check_country, check_id, invalid
from recsys.serving.handler import rpc
from recsys_experiments.assignment import Assignments, assign
from recsys_experiments.exposures import ExposureLog
from recsys_experiments.live_config import LiveConfig

__all__ = ["ExperimentsApp", "ExperimentsServicer", "response_of"]

SERVICE = "experiments"
_DEVICE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def response_of(result: Assignments) -> pb.GetAssignmentsResponse:
    s = result.serving
    weights = s.weights
    assert weights is not None
    assert s.candidates is not None
    return pb.GetAssignmentsResponse(
        assignments=[
            pb.Assignment(
                experiment_id=a.experiment_id, layer=a.layer, variant=a.variant, bucket=a.bucket
            )
            for a in result.assignments
        ],
        holdout=result.holdout,
        serving=pb.ServingConfig(
            candidates_model_version=s.candidates_model_version or "",
            ranker_model_version=s.ranker_model_version or "",
            weights=common_pb2.ObjectiveWeights(
                play=weights.play, complete=weights.complete, rate_high=weights.rate_high
            ),
            candidates=s.candidates,
            diversity=s.diversity or 0.0,
            new_release_boost=s.new_release_boost or 0.0,
            max_per_genre=s.max_per_genre or 0,
        ),
        config_version=result.config_version,
    )


class ExperimentsServicer(pb_grpc.ExperimentsServiceServicer):
    def __init__(self, config: LiveConfig, exposures: ExposureLog) -> None:
        self._config = config
        self._exposures = exposures

    @rpc(SERVICE, "GetAssignments")
    async def GetAssignments(
        self, request: pb.GetAssignmentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetAssignmentsResponse:
        user_id = check_id(request.user_id, "user_id")
        check_country(request.country)
        if not _DEVICE.match(request.device):
            raise invalid(f"device {request.device!r} is not a device name (e.g. tv, mobile)")
        result = assign(self._config.get(), user_id, country=request.country, device=request.device)
        self._exposures.record(user_id, result)
        return response_of(result)


class ExperimentsApp:
    service_names = (pb.DESCRIPTOR.services_by_name["ExperimentsService"].full_name,)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.config = LiveConfig(settings.experiments.config)
        self.exposures = ExposureLog(settings)
        self.servicer = ExperimentsServicer(self.config, self.exposures)

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_ExperimentsServiceServicer_to_server(self.servicer, server)

    async def start(self) -> None:
        await self.config.load_initial(timeout_s=self._settings.serving.startup_timeout_s)
        self.exposures.start()  # Kafka and Cassandra connect in the background

    async def run(self) -> None:
        await asyncio.gather(
            self.config.watch(interval_s=self._settings.experiments.config_check_s),
            self.exposures.run(),
        )

    async def close(self) -> None:
        await self.exposures.close(timeout_s=self._settings.serving.grace_s)
