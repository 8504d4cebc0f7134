"""The CandidatesService servicer and the app :func:`recsys.serving.server.serve` runs.

One call: the member's features (passed by the caller, fetched once upstream) -> the user tower
-> FAISS over the titles the member may watch: available in their country, not in their recent
history, not in the call's exclusions. Those are removed inside the search (an ID selector), so
the answer holds ``limit`` titles whenever the catalog has that many allowed ones.
"""

from __future__ import annotations

from typing import Any

import grpc
from cachetools import LRUCache

from recsys.candidates.v1 import candidates_pb2 as pb
from recsys.candidates.v1 import candidates_pb2_grpc as pb_grpc
from recsys.config import Settings
from recsys.features.title_table import TITLE_FEATURES_MODEL, TitleFeatureTable
from recsys.models.inference import Retrieval
from recsys.models.registry import ModelRegistry, ModelVersion
from recsys.models.vectorize import HISTORY_FEATURE, vectorize_users
from recsys.serving.errors import check_country, check_id, check_ids, invalid
from recsys.serving.features import user_columns
from recsys.serving.handler import Deadline, rpc
from recsys.serving.inference import infer
from recsys.serving.metrics import INFERENCE
from recsys.serving.reload import CurrentVersion, PinnedVersions
from recsys_candidates.availability import Availability, CountryRows

__all__ = ["CandidatesApp", "CandidatesServicer"]

SERVICE = "candidates"
MODEL = "two_tower"
_EMBED = INFERENCE.labels(service=SERVICE, model="user_tower")
_SEARCH = INFERENCE.labels(service=SERVICE, model="faiss")


class CandidatesServicer(pb_grpc.CandidatesServiceServicer):
    def __init__(
        self,
        settings: Settings,
        models: PinnedVersions[Retrieval],
        countries: CurrentVersion[CountryRows],
    ) -> None:
        self._settings = settings.candidates
        self._models = models
        self._countries = countries
        # One per (two-tower version, title table) served at once: the current pair and pinned
        # versions; a swap makes a new key and the old one ages out.
        self._availability: LRUCache[tuple[int, int], Availability] = LRUCache(
            maxsize=settings.candidates.loaded_versions + 2
        )

    @rpc(SERVICE, "GetCandidates")
    async def GetCandidates(
        self, request: pb.GetCandidatesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCandidatesResponse:
        check_id(request.user_id, "user_id")
        check_country(request.country)
        limit = request.limit or self._settings.default_limit
        if limit > self._settings.max_limit:
            raise invalid(f"limit {limit} is above the maximum {self._settings.max_limit}")
        excluded = check_ids(
            request.exclude_title_ids, "exclude_title_ids", limit=self._settings.max_exclusions
        )
        deadline = Deadline(context)
        version, retrieval = await self._models.get(request.model_version)
        columns = user_columns(request.features.features)
        deadline.check("the user tower")
        users = vectorize_users(retrieval.spec, columns, n=1)
        vector = infer(_EMBED, retrieval.tower.embed, users)
        allowed = self._availability_for(retrieval).allowed(request.country)
        played: list[Any] = columns.get(HISTORY_FEATURE, [[]])[0]
        blocked = retrieval.index.rows([*played, *excluded])
        if blocked:
            allowed[blocked] = False
        deadline.check("the search")
        found = infer(_SEARCH, retrieval.index.search_allowed, vector[0], limit, allowed)
        return pb.GetCandidatesResponse(
            title_ids=[t for t, _ in found],
            scores=[s for _, s in found],
            model_version=version,
            index_version=version,  # the index ships inside the two-tower version
        )

    def _availability_for(self, retrieval: Retrieval) -> Availability:
        countries = self._countries.get()
        key = (id(retrieval.index), id(countries))
        found = self._availability.get(key)
        if found is None:
            found = Availability(retrieval.index, countries)
            self._availability[key] = found
        return found


class CandidatesApp:
    service_names = (pb.DESCRIPTOR.services_by_name["CandidatesService"].full_name,)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        registry = ModelRegistry.from_settings(settings.models)
        threads = settings.serving.onnx_threads

        def load_retrieval(version: ModelVersion) -> Retrieval:
            return Retrieval.load(version, threads=threads)

        def load_countries(version: ModelVersion) -> CountryRows:
            return CountryRows(TitleFeatureTable.load(version))

        self.current: CurrentVersion[Retrieval] = CurrentVersion(
            registry, MODEL, load_retrieval, service=SERVICE
        )
        self.countries: CurrentVersion[CountryRows] = CurrentVersion(
            registry, TITLE_FEATURES_MODEL, load_countries, service=SERVICE
        )
        models = PinnedVersions(self.current, size=settings.candidates.loaded_versions)
        self.servicer = CandidatesServicer(settings, models, self.countries)

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_CandidatesServiceServicer_to_server(self.servicer, server)

    async def start(self) -> None:
        import faiss

        faiss.omp_set_num_threads(1)  # one search per call; the event loop keeps the other core
        timeout = self._settings.serving.startup_timeout_s
        await self.current.load_initial(timeout_s=timeout)
        await self.countries.load_initial(timeout_s=timeout)

    async def run(self) -> None:
        import asyncio

        interval = self._settings.serving.reload_interval_s
        await asyncio.gather(
            self.current.watch(interval_s=interval), self.countries.watch(interval_s=interval)
        )

    async def close(self) -> None:
        return None
