"""The API's dependencies: a gRPC channel and stub per serving service, Redis for the fallback
lists, and one circuit breaker per dependency.

    backends = Backends.connect(settings)
    reply = await backends.ranker.Rank(request, timeout=0.03)
    await backends.close()

Channels connect lazily and reconnect by themselves; a call to a service that is down fails at
once with UNAVAILABLE (no wait_for_ready), which is what the ladder wants. Targets default to
127.0.0.1 and each service's port (``RECSYS_RANKER__PORT`` ...); in Kubernetes the chart sets
``RECSYS_API__RANKER_TARGET`` and the others to the services' DNS names.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

import grpc
from redis.asyncio import Redis

from recsys.candidates.v1 import candidates_pb2_grpc
from recsys.clients.redis import redis_client
from recsys.config import GrpcServiceSettings, Settings
from recsys.experiments.v1 import experiments_pb2_grpc
from recsys.featurestore.v1 import featurestore_pb2_grpc
from recsys.ranker.v1 import ranker_pb2_grpc
from recsys_api.breakers import Breaker

__all__ = ["DEPENDENCIES", "Backends", "target"]

DEPENDENCIES: Final = ("experiments", "featurestore", "candidates", "ranker", "redis")

_CHANNEL_OPTIONS: Final = (
    # Reconnect quickly after a service restarts (default backoff grows to 120 s).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
)


def target(configured: str, service: GrpcServiceSettings) -> str:
    """``configured`` if set, else the local address of ``service``."""
    return configured or f"127.0.0.1:{service.port}"


@dataclass(frozen=True)
class Backends:
    experiments: experiments_pb2_grpc.ExperimentsServiceStub
    featurestore: featurestore_pb2_grpc.FeatureStoreServiceStub
    candidates: candidates_pb2_grpc.CandidatesServiceStub
    ranker: ranker_pb2_grpc.RankerServiceStub
    redis: Redis
    breakers: dict[str, Breaker]
    targets: dict[str, str]
    _channels: dict[str, grpc.aio.Channel]

    @classmethod
    def connect(cls, settings: Settings) -> Backends:
        api = settings.api
        targets = {
            "experiments": target(api.experiments_target, settings.experiments),
            "featurestore": target(api.featurestore_target, settings.featurestore),
            "candidates": target(api.candidates_target, settings.candidates),
            "ranker": target(api.ranker_target, settings.ranker),
        }
        channels = {
            name: grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
            for name, address in targets.items()
        }
        breakers = {
            name: Breaker(name, failures=api.breaker_failures, recovery_s=api.breaker_recovery_s)
            for name in DEPENDENCIES
        }
        return cls(
            experiments=experiments_pb2_grpc.ExperimentsServiceStub(channels["experiments"]),
            featurestore=featurestore_pb2_grpc.FeatureStoreServiceStub(channels["featurestore"]),
            candidates=candidates_pb2_grpc.CandidatesServiceStub(channels["candidates"]),
            ranker=ranker_pb2_grpc.RankerServiceStub(channels["ranker"]),
            redis=redis_client(settings.redis, fail_fast=True),
            breakers=breakers,
            targets={**targets, "redis": f"{settings.redis.host}:{settings.redis.port}"},
            _channels=channels,
        )

    async def warm_up(self, timeout_s: float) -> dict[str, bool]:
        """Connect every channel and Redis now (each waited for at most ``timeout_s``), so the
        first requests do not pay for the connections and step down the ladder; returns which
        answered. A dependency that is down stays down for the breakers to find."""

        async def ready(name: str) -> bool:
            try:
                async with asyncio.timeout(timeout_s):
                    if name == "redis":
                        await self.redis.ping()
                    else:
                        await self._channels[name].channel_ready()
            except Exception:  # down or slow: the ladder deals with it per request
                return False
            return True

        names = [*self._channels, "redis"]
        return dict(zip(names, await asyncio.gather(*map(ready, names)), strict=True))

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        await self.redis.aclose()
