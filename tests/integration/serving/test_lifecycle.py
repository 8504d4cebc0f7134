"""The serving lifecycle: NOT_SERVING until the models are loaded, a promotion swapped in under
continuous calls without one failing, and SIGTERM under load cutting no call off."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recsys.candidates.v1 import candidates_pb2 as cpb
from recsys.candidates.v1 import candidates_pb2_grpc as cgrpc
from recsys.features.title_table import TITLE_FEATURES_MODEL
from recsys.infra.services import GrpcService
from recsys.models import ModelRegistry
from recsys.models.inference import Ranker
from recsys.ranker.v1 import ranker_pb2 as rpb
from recsys.ranker.v1 import ranker_pb2_grpc as rgrpc
from tests.integration.serving.conftest import Platform
from tests.serving_support import ServingProcess, health_status, start_service

pytestmark = pytest.mark.integration


@dataclass
class Call:
    started: float
    ended: float
    code: grpc.StatusCode
    version: str


def _republish(registry: ModelRegistry, name: str) -> str:
    """The current version's files again, as a new version made current."""
    current = registry.current(name)
    assert current is not None
    with registry.new_version(name) as staging:
        for path in current.path.iterdir():
            if path.name != "manifest.json":
                shutil.copy(path, staging / path.name)
        staging.manifest = current.manifest.model_copy(update={"version": "", "files": {}})
    assert staging.version is not None
    registry.promote(name, staging.version)
    return staging.version


async def _keep_calling(
    call: object, request: object, stop: asyncio.Event, calls: list[Call], *, limit: float = 5
) -> None:
    """Send ``request`` back to back until ``stop`` is set or a call fails."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            reply = await call(request, timeout=limit)  # type: ignore[operator]
        except grpc.aio.AioRpcError as exc:
            calls.append(Call(started, time.monotonic(), exc.code(), ""))
            return
        calls.append(Call(started, time.monotonic(), grpc.StatusCode.OK, reply.model_version))


async def test_a_promotion_under_continuous_calls_fails_none(
    platform: Platform, services: dict[str, ServingProcess]
) -> None:
    ranker_version = platform.registry.current("ranker")
    assert ranker_version is not None
    titles = list(Ranker.load(ranker_version).spec.titles)
    country = "US"
    stop = asyncio.Event()
    calls: dict[str, list[Call]] = {"ranker": [], "two_tower": []}
    async with (
        grpc.aio.insecure_channel(services["ranker"].address) as ranker_channel,
        grpc.aio.insecure_channel(services["candidates"].address) as candidates_channel,
    ):
        rank = rgrpc.RankerServiceStub(ranker_channel).Rank
        candidates = cgrpc.CandidatesServiceStub(candidates_channel).GetCandidates
        workers = [
            *(
                asyncio.create_task(
                    _keep_calling(
                        rank,
                        rpb.RankRequest(user_id="u", title_ids=titles),
                        stop,
                        calls["ranker"],
                    )
                )
                for _ in range(3)
            ),
            *(
                asyncio.create_task(
                    _keep_calling(
                        candidates,
                        cpb.GetCandidatesRequest(user_id="u", country=country),
                        stop,
                        calls["two_tower"],
                    )
                )
                for _ in range(3)
            ),
        ]
        await asyncio.sleep(0.5)
        new = {name: _republish(platform.registry, name) for name in calls}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(  # noqa: ASYNC110 (polls the replies)
            any(c.version == new[name] for c in found) for name, found in calls.items()
        ):
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*workers)

    for name, found in calls.items():
        failed = [c for c in found if c.code is not grpc.StatusCode.OK]
        assert not failed, f"{name}: {len(failed)} of {len(found)} calls failed: {failed[:3]}"
        versions = [c.version for c in found]
        assert new[name] in versions, f"{name} never served {new[name]}"
        assert versions[-1] == new[name]
        assert len(found) > 20


async def _watch_health(address: str, not_serving: asyncio.Event) -> None:
    """Set ``not_serving`` when the health service says so (what a load balancer acts on)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        async for reply in stream:
            if reply.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                not_serving.set()
                return


async def test_sigterm_under_load_cuts_no_call_off(platform: Platform) -> None:
    drain_s = 1.0
    ranker = start_service(
        "ranker",
        platform.root,
        {
            **platform.env,
            "RECSYS_SERVING__DRAIN_S": str(drain_s),
            "RECSYS_SERVING__GRACE_S": "10",
            "RECSYS_LOG__FORMAT": "json",
        },
    )
    ranker.wait_serving()
    # 2,000 candidates a call: each call takes the server a few milliseconds.
    request = rpb.RankRequest(user_id="u", title_ids=[f"t{i}" for i in range(2000)])
    not_serving = asyncio.Event()
    polite: list[Call] = []  # stop sending once health says NOT_SERVING, as a balancer would
    blind: list[Call] = []  # keep sending through the close of the listener
    async with grpc.aio.insecure_channel(ranker.address) as channel:
        rank = rgrpc.RankerServiceStub(channel).Rank
        watcher = asyncio.create_task(_watch_health(ranker.address, not_serving))
        workers = [
            *(
                asyncio.create_task(_keep_calling(rank, request, not_serving, polite, limit=10))
                for _ in range(2)
            ),
            *(
                asyncio.create_task(_keep_calling(rank, request, asyncio.Event(), blind, limit=10))
                for _ in range(2)
            ),
        ]
        await asyncio.sleep(1.0)
        ranker.process.terminate()  # SIGTERM
        signalled = time.monotonic()
        await asyncio.sleep(0.3)
        draining = await asyncio.to_thread(health_status, ranker.address, 1.0)
        done, _ = await asyncio.wait(workers, timeout=30)
        assert len(done) == len(workers), "calls kept succeeding after the drain"
        watcher.cancel()
    code = await asyncio.to_thread(ranker.process.wait, 30)

    assert draining == health_pb2.HealthCheckResponse.NOT_SERVING
    assert code == 0, ranker.tail()
    assert {c.code for c in polite} == {grpc.StatusCode.OK}
    assert any(c.started > signalled for c in blind if c.code is grpc.StatusCode.OK), (
        "no call was answered while draining"
    )
    refused = [c for c in blind if c.code is not grpc.StatusCode.OK]
    assert {c.code for c in refused} <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
    assert all(c.started >= signalled + drain_s - 0.1 for c in refused)
    # The server's own account: it answered exactly the calls the clients got answers for, and
    # no handler was interrupted (that would count as CANCELLED). A refused call never started.
    answered = sum(1 for c in [*polite, *blind] if c.code is grpc.StatusCode.OK)
    assert _stopped_calls(ranker) == {"OK": answered}


def _stopped_calls(process: ServingProcess) -> dict[str, int]:
    for line in process.log.read_text().splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "stopped":
                return dict(event["calls"])
    raise AssertionError(f"no 'stopped' line in the log: {process.tail()}")


async def test_not_serving_until_the_models_are_there(platform: Platform, tmp_path: Path) -> None:
    root = tmp_path / "registry"
    root.mkdir()
    candidates = start_service(
        "candidates", platform.root, {**platform.env, "RECSYS_MODELS__ROOT": str(root)}
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while status is None and time.monotonic() < deadline:
            status = health_status(candidates.address, 1.0)
            await asyncio.sleep(0.1)
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        async with grpc.aio.insecure_channel(candidates.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await cgrpc.CandidatesServiceStub(channel).GetCandidates(
                    cpb.GetCandidatesRequest(user_id="u", country="US"), timeout=2
                )
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "not loaded yet" in (caught.value.details() or "")

        for name in ("two_tower", TITLE_FEATURES_MODEL):  # what the pipelines publish
            shutil.copytree(platform.registry.root / name, root / name)
        candidates.wait_serving(timeout_s=30)
    finally:
        candidates.terminate()


async def test_status_shows_health_and_the_versions_served(
    platform: Platform, services: dict[str, ServingProcess]
) -> None:
    """What `recsys services status` prints for a serving service: its health probe and the
    registry versions its /metrics says it serves."""
    process = services["candidates"]
    port = int(process.address.rsplit(":", 1)[1])
    settings = platform.settings.model_copy(
        update={
            "candidates": platform.settings.candidates.model_copy(
                update={"port": port, "metrics_port": process.metrics_port}
            )
        }
    )
    service = GrpcService(settings, "candidates")
    await service.probe()  # SERVING, or it raises
    served = await service.detail()
    expected = {
        f"{name} {platform.registry.current_token(name)}"
        for name in ("two_tower", TITLE_FEATURES_MODEL)
    }
    assert set(served.split(", ")) == expected
