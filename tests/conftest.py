"""Shared fixtures. Tests that need a server get it from the repo's own infra commands.

The session fixture `infra` runs `recsys infra up` (a no-op for servers already running) and, at
the end, stops only the servers it started itself, unless RECSYS_TEST_KEEP_INFRA=1.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from recsys.clients.cassandra import CassandraClient, connect_cassandra
from recsys.clients.redis import redis_client
from recsys.config import Settings
from recsys.infra import manager
from recsys.infra.apt import apt_install


@pytest.fixture(scope="session")
def promtool() -> Path:
    """Debian's prometheus package's promtool, installed on first use (as root)."""
    if shutil.which("promtool") is None:
        apt_install("prometheus")
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: install Debian's prometheus package", pytrace=False)
    return Path(found)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def infra(settings: Settings) -> Iterator[Settings]:
    results = asyncio.run(manager.up(settings, progress=lambda _: None))
    started = [r.name for r in results if r.action == "started"]
    yield settings
    if started and os.environ.get("RECSYS_TEST_KEEP_INFRA") != "1":
        manager.down(settings, started, progress=lambda _: None)


@pytest.fixture
def unique() -> str:
    """A short random suffix for per-test topics, keys and keyspaces."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def redis(infra: Settings) -> AsyncIterator[Redis]:
    client = redis_client(infra.redis)
    yield client
    await client.aclose()


@pytest.fixture
def cassandra(infra: Settings) -> Iterator[CassandraClient]:
    client = connect_cassandra(infra.cassandra)
    yield client
    client.close()


# Files the tests leave for people to look at (the web page's screenshot): listed at the end of
# the run, kept under .recsys/test-artifacts/ (ignored by git).
ARTIFACTS: list[str] = []


@pytest.fixture(scope="session")
def artifacts_dir(settings: Settings) -> Path:
    path = settings.infra.state_dir / "test-artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if ARTIFACTS:
        terminalreporter.section("artifacts")
        for line in ARTIFACTS:
            terminalreporter.write_line(line)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """End schemathesis's in-process ASGI lifespans (the ingest fuzz tests' app) within a bound,
    before its own plugin does it without one: one full run in several hung there for good,
    idle, waiting for the app's shutdown. A hang is now a teardown error that says so, not a
    stalled suite."""
    if not item.nodeid.startswith("tests/integration/test_ingest_fuzz.py"):
        return
    from schemathesis.python.asgi import shutdown_lifespans

    stopper = threading.Thread(target=shutdown_lifespans, daemon=True)
    stopper.start()
    stopper.join(LIFESPAN_STOP_S)
    if stopper.is_alive():
        raise RuntimeError(f"the ingest app's lifespan did not shut down in {LIFESPAN_STOP_S} s")


LIFESPAN_STOP_S = 60
