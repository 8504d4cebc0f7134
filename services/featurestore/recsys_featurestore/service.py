"""The FeatureStoreService servicer and the app :func:`recsys.serving.server.serve` runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import grpc

from recsys.clients.cassandra import CassandraClient, connect_cassandra
from recsys.clients.redis import redis_client
from recsys.clients.startup import connect_in_background
from recsys.common.v1 import common_pb2
from recsys.config import Settings
from recsys.features.title_table import TITLE_FEATURES_MODEL, TitleFeatureTable
from recsys.featurestore.v1 import featurestore_pb2 as pb
from recsys.featurestore.v1 import featurestore_pb2_grpc as pb_grpc
from recsys.models.registry import ModelRegistry, ModelVersion
from recsys.serving.errors import check_id, check_ids, invalid
from recsys.serving.features import feature_message
from recsys.serving.handler import Deadline, rpc
from recsys.serving.reload import CurrentVersion
from recsys_featurestore.title_features import ALL_TITLE_FEATURES, TitleColumns
from recsys_featurestore.user_features import ALL_USER_FEATURES, UserFeatureReader

__all__ = ["FeatureStoreApp", "FeatureStoreServicer"]

SERVICE = "featurestore"


def _names(requested: Sequence[str], known: Sequence[str], what: str) -> list[str]:
    if not requested:
        return list(known)
    unknown = sorted(set(requested) - set(known))
    if unknown:
        raise invalid(f"unknown {what} feature(s) {unknown}; known: {', '.join(known)}")
    return list(dict.fromkeys(requested))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class FeatureStoreServicer(pb_grpc.FeatureStoreServiceServicer):
    def __init__(
        self, users: UserFeatureReader, titles: CurrentVersion[TitleColumns], max_titles: int
    ) -> None:
        self._users = users
        self._titles = titles
        self._max_titles = max_titles

    @rpc(SERVICE, "GetUserFeatures")
    async def GetUserFeatures(
        self, request: pb.GetUserFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUserFeaturesResponse:
        user_id = check_id(request.user_id, "user_id")
        names = _names(request.feature_names, ALL_USER_FEATURES, "user")
        deadline = Deadline(context)
        now_ms = _now_ms()
        found = await self._users.read(user_id, names, now_ms=now_ms, deadline=deadline)
        deadline.check("the answer")
        features = {
            name: feature_message(name, f.value, age_ms=f.age_ms(now_ms), source=f.source)
            for name, f in found.features.items()
        }
        return pb.GetUserFeaturesResponse(
            user_id=user_id,
            features=common_pb2.FeatureSet(features=features),
            realtime_unavailable=found.realtime_unavailable,
            batch_unavailable=found.batch_unavailable,
        )

    @rpc(SERVICE, "GetTitleFeatures")
    async def GetTitleFeatures(
        self, request: pb.GetTitleFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTitleFeaturesResponse:
        if not request.title_ids:
            raise invalid("title_ids is empty: ask for at least one title")
        ids = check_ids(request.title_ids, "title_ids", limit=self._max_titles)
        names = _names(request.feature_names, ALL_TITLE_FEATURES, "title")
        titles = self._titles.get()  # one reference for the whole call: a swap cannot split it
        columns, _ = titles.columns(ids, names)
        table = titles.table
        age = max(0, _now_ms() - table.event_time_ms)
        return pb.GetTitleFeaturesResponse(
            title_ids=ids, columns=columns, age_ms=age, table_version=table.version
        )


def _load_titles(version: ModelVersion) -> TitleColumns:
    return TitleColumns.of(TitleFeatureTable.load(version))


class FeatureStoreApp:
    service_names = (pb.DESCRIPTOR.services_by_name["FeatureStoreService"].full_name,)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        registry = ModelRegistry.from_settings(settings.models)
        self.titles: CurrentVersion[TitleColumns] = CurrentVersion(
            registry, TITLE_FEATURES_MODEL, _load_titles, service=SERVICE
        )
        self._redis = redis_client(settings.redis, fail_fast=True)
        self._cassandra: CassandraClient | None = None
        self._connecting: asyncio.Task[None] | None = None
        self.users = UserFeatureReader(
            settings.featurestore,
            redis=self._redis,
            redis_prefix=settings.redis.key_prefix,
            cassandra=None,  # connected by start()
            keyspace=settings.cassandra.keyspace,
        )
        self.servicer = FeatureStoreServicer(
            self.users, self.titles, settings.featurestore.max_title_ids
        )

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_FeatureStoreServiceServicer_to_server(self.servicer, server)

    async def start(self) -> None:
        # Cassandra is connected in the background: until it answers, batch values are defaults
        # (flagged as such), which is what the feature store serves when it goes down later.
        self._connecting = asyncio.create_task(self._connect_cassandra())
        await self.titles.load_initial(timeout_s=self._settings.serving.startup_timeout_s)

    async def _connect_cassandra(self) -> None:
        settings = self._settings.cassandra
        client = await connect_in_background("cassandra", lambda: connect_cassandra(settings))
        self._cassandra = self.users.cassandra = client

    async def run(self) -> None:
        await self.titles.watch(interval_s=self._settings.serving.reload_interval_s)

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        await self._redis.aclose()
        if self._cassandra is not None:
            self._cassandra.close()
