"""cassandra-driver wiring: token-aware routing, prepared statements, asyncio bridge.

    client = connect_cassandra(settings.cassandra)
    rows = await client.execute("SELECT v FROM t WHERE k = ?", ("key",))
    client.close()

Statements are prepared once per distinct CQL string and reused; the driver then routes each
bound statement straight to a replica that owns its partition (token-aware policy).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    ResponseFuture,
    Session,
)
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.query import PreparedStatement, Statement, dict_factory

from recsys.config import CassandraSettings

__all__ = ["CassandraClient", "connect_cassandra"]


class CassandraClient:
    """A connected session plus a memo of prepared statements keyed by their CQL text."""

    def __init__(self, cluster: Cluster, session: Session) -> None:
        self.cluster = cluster
        self.session = session
        self._prepared: dict[str, PreparedStatement] = {}
        self._lock = threading.Lock()

    def prepare(self, cql: str) -> PreparedStatement:
        statement = self._prepared.get(cql)
        if statement is None:
            with self._lock:
                statement = self._prepared.get(cql)
                if statement is None:
                    statement = self.session.prepare(cql)
                    self._prepared[cql] = statement
        return statement

    def execute_sync(self, cql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Blocking execution, for command-line tools and migrations."""
        return list(self.session.execute(self.prepare(cql), params))

    async def execute(self, cql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a prepared statement without blocking the event loop (first page of results)."""
        return await _as_asyncio(self.session.execute_async(self.prepare(cql), params))

    async def run(self, statement: Statement) -> list[dict[str, Any]]:
        """Run a built statement (a bound or batch statement) without blocking the loop."""
        return await _as_asyncio(self.session.execute_async(statement))

    def close(self) -> None:
        self.cluster.shutdown()


def _as_asyncio(response: ResponseFuture) -> asyncio.Future[list[dict[str, Any]]]:
    # The driver completes futures on its own I/O thread; hand results back to the loop's thread.
    loop = asyncio.get_running_loop()
    future: asyncio.Future[list[dict[str, Any]]] = loop.create_future()

    def _ok(rows: Any) -> None:
        loop.call_soon_threadsafe(_settle, future, list(rows or ()), None)

    def _err(exc: BaseException) -> None:
        loop.call_soon_threadsafe(_settle, future, None, exc)

    response.add_callbacks(_ok, _err)
    return future


def _settle(
    future: asyncio.Future[list[dict[str, Any]]],
    rows: list[dict[str, Any]] | None,
    exc: BaseException | None,
) -> None:
    if future.done():  # cancelled by the caller's deadline
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(rows or [])


def connect_cassandra(
    settings: CassandraSettings,
    *,
    keyspace: str | None = None,
    consistency: int = ConsistencyLevel.LOCAL_QUORUM,
) -> CassandraClient:
    """Connect with token-aware, DC-local routing; rows come back as dicts."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.local_dc)),
        request_timeout=settings.request_timeout_s,
        consistency_level=consistency,
        row_factory=dict_factory,
    )
    cluster = Cluster(
        contact_points=settings.contact_points,
        port=settings.port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=settings.connect_timeout_s,
        # The driver's default waits up to 10 minutes between reconnections to a node that was
        # down; a service should be back within seconds of the node.
        reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.5, max_delay=5.0),
        # Cassandra 5 speaks protocol v5; pin it so the driver does not probe and log downgrades.
        protocol_version=5,
    )
    session = cluster.connect(keyspace)
    return CassandraClient(cluster, session)
