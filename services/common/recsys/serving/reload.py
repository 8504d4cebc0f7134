"""Hot reload of registry versions: poll the ``current`` pointer, load in the background, swap.

    watcher = CurrentVersion(registry, "ranker", Ranker.load, service="ranker")
    await watcher.load_initial(timeout_s=300)       # before the service says SERVING
    task = asyncio.create_task(watcher.watch(interval_s=1.0))
    model = watcher.get()                           # one reference per call

A call takes one reference and uses it to the end, so a swap (one attribute assignment on the
event loop) never changes what a call in flight sees, and the old version stays alive until its
last call drops it. A version that fails to load is logged and counted, and the running one keeps
serving. ``PinnedVersions`` keeps a few non-current versions that experiments ask for by id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import grpc
from cachetools import LRUCache, TTLCache

from recsys.log import get_logger
from recsys.models.registry import ModelRegistry, ModelVersion, RegistryError
from recsys.serving.errors import RpcError, not_found
from recsys.serving.metrics import LOADED_VERSION, RELOADS

__all__ = ["FAILED_VERSION_TTL_S", "CurrentVersion", "PinnedVersions"]

FAILED_VERSION_TTL_S = 60.0

log = get_logger(__name__)

T = TypeVar("T")
Loader = Callable[[ModelVersion], T]


class CurrentVersion(Generic[T]):
    """The loaded current version of one registry name."""

    def __init__(
        self, registry: ModelRegistry, name: str, load: Loader[T], *, service: str
    ) -> None:
        self.registry = registry
        self.name = name
        self._load = load
        self._service = service
        self._value: T | None = None
        self.version: str | None = None
        self._refused: str | None = None  # a version that failed to load: not tried again

    def load_version(self, version: ModelVersion) -> T:
        """Load any version of this name (blocking: call it in a thread)."""
        return self._load(version)

    def peek(self) -> T | None:
        """The loaded value, or None before the first load (for callers that degrade)."""
        return self._value

    def get(self) -> T:
        if self._value is None:  # only before the service says SERVING
            raise RpcError(grpc.StatusCode.UNAVAILABLE, f"{self.name} is not loaded yet")
        return self._value

    async def load_initial(self, *, timeout_s: float, poll_s: float = 1.0) -> None:
        """Wait for a current version (the pipelines may still be publishing) and load it;
        TimeoutError with the reason after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        reason, logged = "no current version yet", ""
        while True:
            try:
                if await self.refresh():
                    return
            except Exception as exc:  # any load failure: the pipelines may publish a good one
                reason = str(exc) or type(exc).__name__
                self._refused = None  # before SERVING, keep trying: it may be republished
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"no loadable {self.name} in {self.registry.root} after {timeout_s:g} s: "
                    f"{reason}"
                )
            if reason != logged:  # once per reason, not once per poll
                log.info("waiting for a version", model=self.name, reason=reason[:200])
                logged = reason
            await asyncio.sleep(poll_s)

    async def refresh(self) -> bool:
        """Load and swap in the current version if it changed; True when one is loaded.
        A version that fails to load raises, and the running one stays."""
        token = await asyncio.to_thread(self.registry.current_token, self.name)
        if token is None or token in (self.version, self._refused):
            return self._value is not None
        attempted = token
        try:
            version = await asyncio.to_thread(self.registry.current, self.name)
            if version is None:
                return self._value is not None
            attempted = version.version  # the pointer may have moved since the token was read
            value = await asyncio.to_thread(self._load, version)
        except Exception:
            self._refused = attempted
            RELOADS.labels(service=self._service, model=self.name, result="error").inc()
            raise
        previous, self._value, self.version = self.version, value, version.version
        RELOADS.labels(service=self._service, model=self.name, result="ok").inc()
        if previous is not None:
            LOADED_VERSION.remove(self._service, self.name, previous)
        LOADED_VERSION.labels(service=self._service, model=self.name, version=self.version).set(1)
        log.info("version loaded", model=self.name, version=self.version, previous=previous)
        return True

    async def watch(self, *, interval_s: float) -> None:
        """Poll the pointer forever (cancel the task to stop)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.refresh()
            except Exception as exc:  # a bad version must not stop the watcher
                log.error(
                    "version refused; the loaded one keeps serving",
                    model=self.name,
                    loaded=self.version,
                    error=str(exc)[:300],
                )


class PinnedVersions(Generic[T]):
    """Versions asked for by id (an experiment variant's), beside the current one: loaded on
    first use, the least recently used dropped beyond ``size``."""

    def __init__(self, current: CurrentVersion[T], *, size: int) -> None:
        self._current = current
        self._cache: LRUCache[str, T] = LRUCache(maxsize=size)
        self._loading: dict[str, asyncio.Task[T]] = {}
        # A version that could not be served is not loaded again on every call for a while.
        self._failed: TTLCache[str, RpcError] = TTLCache(maxsize=64, ttl=FAILED_VERSION_TTL_S)

    async def get(self, version: str) -> tuple[str, T]:
        """(version id, loaded value); "" means current. NOT_FOUND for an unknown version."""
        current = self._current
        if not version or version == current.version:
            return current.version or "", current.get()
        found = self._cache.get(version)
        if found is not None:
            return version, found
        failed = self._failed.get(version)
        if failed is not None:
            raise failed
        task = self._loading.get(version)
        if task is None:
            task = asyncio.create_task(self._fetch(version))
            self._loading[version] = task
            task.add_done_callback(lambda _: self._loading.pop(version, None))
        return version, await asyncio.shield(task)

    async def _fetch(self, version: str) -> T:
        try:
            value = await self._load(version)
        except RpcError as exc:
            self._failed[version] = exc
            raise
        self._cache[version] = value
        return value

    async def _load(self, version: str) -> T:
        registry, name = self._current.registry, self._current.name
        try:
            found = await asyncio.to_thread(registry.get, name, version)
        except RegistryError as exc:
            if version not in await asyncio.to_thread(registry.version_ids, name):
                raise not_found(str(exc)) from None
            raise _unusable(name, version, exc) from None  # there, but its files do not check
        try:
            return await asyncio.to_thread(self._current.load_version, found)
        except Exception as exc:
            raise _unusable(name, version, exc) from None


def _unusable(name: str, version: str, error: Exception) -> RpcError:
    reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else repr(error)
    return RpcError(
        grpc.StatusCode.FAILED_PRECONDITION, f"{name} {version} cannot be served: {reason}"
    )
