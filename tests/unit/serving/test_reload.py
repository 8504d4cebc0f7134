"""Hot reload: the current version swaps in, a broken one is refused while the loaded one keeps
serving, and pinned versions load once and report unknown ids as NOT_FOUND."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from recsys.models import ModelRegistry
from recsys.models.manifest import Manifest
from recsys.models.registry import ModelVersion
from recsys.serving.errors import RpcError
from recsys.serving.reload import CurrentVersion, PinnedVersions

NAME = "toy"
loads: list[str] = []


def _publish(registry: ModelRegistry, text: str, *, promote: bool = True) -> str:
    with registry.new_version(NAME) as staging:
        (staging / "value.txt").write_text(text)
        staging.manifest = Manifest()
    assert staging.version is not None
    if promote:
        registry.promote(NAME, staging.version)
    return staging.version


def _load(version: ModelVersion) -> str:
    text = version.file("value.txt").read_text()
    if text == "broken":
        raise ValueError("cannot load a broken model")
    loads.append(version.version)
    return text


async def test_a_promoted_version_is_swapped_in_and_a_broken_one_refused(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    current: CurrentVersion[str] = CurrentVersion(registry, NAME, _load, service="test")
    with pytest.raises(RpcError) as caught:
        current.get()
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE

    with pytest.raises(TimeoutError, match="no loadable toy"):
        await current.load_initial(timeout_s=0.05, poll_s=0.01)
    first = _publish(registry, "one")
    await current.load_initial(timeout_s=1)
    held = current.get()  # what a call in flight holds
    assert (current.version, held) == (first, "one")

    second = _publish(registry, "two")
    assert await current.refresh() is True
    assert (current.version, current.get(), held) == (second, "two", "one")

    _publish(registry, "broken")
    with pytest.raises(ValueError, match="broken"):
        await current.refresh()
    assert (current.version, current.get()) == (second, "two")
    await current.refresh()  # the refused version is not tried again
    assert current.get() == "two"


async def test_pinned_versions_load_once_and_unknown_ones_are_not_found(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    old = _publish(registry, "old")
    _publish(registry, "new")
    current: CurrentVersion[str] = CurrentVersion(registry, NAME, _load, service="test")
    await current.load_initial(timeout_s=1)
    pinned = PinnedVersions(current, size=2)
    loads.clear()
    results = await asyncio.gather(*(pinned.get(old) for _ in range(5)))
    assert results == [(old, "old")] * 5
    assert loads == [old]  # five concurrent calls, one load
    assert await pinned.get("") == (current.version, "new")
    with pytest.raises(RpcError) as caught:
        await pinned.get("v0099")
    assert caught.value.code is grpc.StatusCode.NOT_FOUND
    assert "toy has no version 'v0099'" in caught.value.message


async def test_a_pinned_version_that_cannot_load_is_failed_precondition_once(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(tmp_path)
    broken = _publish(registry, "broken", promote=False)
    _publish(registry, "good")
    current: CurrentVersion[str] = CurrentVersion(registry, NAME, _load, service="test")
    await current.load_initial(timeout_s=1)
    pinned = PinnedVersions(current, size=2)
    for _ in range(2):  # the second answer comes from memory: no second load
        with pytest.raises(RpcError) as caught:
            await pinned.get(broken)
        assert caught.value.code is grpc.StatusCode.FAILED_PRECONDITION
        assert f"toy {broken} cannot be served: cannot load a broken model" in caught.value.message
