"""Bring the local infrastructure up, report on it and take it down.

report = await up(settings)          # idempotent: running servers are left as they are
for s in status(settings): print(s)
down(settings)                       # stops only the processes `up` started, by pid

The same functions run the platform's services (``SERVICE_NAMES``). ``features`` names the
group of feature workers, ``features-1`` ... ``features-N`` (N is
``settings.services.features_workers``); ``down`` and ``status`` also take in workers beyond N
that an earlier ``up`` with more workers started, so lowering the setting strands no process.

The services run under a supervisor each (``recsys.infra.supervise``): the pid record names the
supervisor, which restarts the service with backoff when it exits and records why in
``supervisor.json`` beside the record; ``status`` reports the restarts and the last exit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from recsys.config import Settings
from recsys.infra.cassandra import CassandraServer
from recsys.infra.kafka import KafkaServer
from recsys.infra.names import (
    FEATURES_GROUP,
    SERVER_NAMES,
    SERVICE_NAMES,
    SERVING_SERVICE_NAMES,
    STREAM_SERVICE_NAMES,
)
from recsys.infra.process import ProcessRecord, describe_listener, read_record, spawn, terminate
from recsys.infra.prometheus import PrometheusServer
from recsys.infra.redis import RedisServer
from recsys.infra.server import InfraError, Server, port_is_free
from recsys.infra.services import (
    ApiService,
    BronzeService,
    FeaturesWorker,
    GrpcService,
    IngestService,
    MetricsReadyService,
    features_index,
)
from recsys.infra.supervise import Backoff, ExitRecord, read_state, supervise_argv

__all__ = [
    "SERVER_NAMES",
    "SERVICE_NAMES",
    "SERVING_SERVICE_NAMES",
    "STREAM_SERVICE_NAMES",
    "ServerStatus",
    "StartResult",
    "down",
    "launch_argv",
    "servers",
    "service_endpoints",
    "status",
    "up",
]

_ALL = (*SERVER_NAMES, *SERVICE_NAMES)  # also the start order; down goes the other way
_LOG_TAIL_LINES = 30

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class StartResult:
    name: str
    address: str
    action: str  # "started" or "already running"
    seconds: float
    pid: int
    log: str
    note: str


@dataclass(frozen=True, slots=True)
class ServerStatus:
    name: str
    address: str
    state: str  # "running", "not answering", "restarting" (waiting to), "stopped"
    pid: int | None  # the recorded process: a service's supervisor
    uptime_s: float | None  # since the service's last (re)start
    log: str
    data_dir: str
    service_pid: int | None = None  # the supervised service itself, while it runs
    restarts: int = 0
    last_exit: ExitRecord | None = None
    restart_in_s: float | None = None  # while "restarting"
    detail: str = ""  # what it serves (a gRPC service's model versions)


def servers(
    settings: Settings, names: Iterable[str] | None = None, *, recorded: bool = False
) -> list[Server]:
    """The named processes (default: the infrastructure servers), in dependency order.

    ``features`` stands for every configured feature worker; with ``recorded`` it also takes in
    workers beyond the configured count that have a pid record (started by an earlier ``up``).
    """
    wanted = list(names or SERVER_NAMES)
    unknown = sorted(n for n in set(wanted) - set(_ALL) if features_index(n) is None)
    if unknown:
        choices = [*_ALL, f"{FEATURES_GROUP}-<n>"]
        raise InfraError(f"unknown server(s) {unknown}; choose from {choices}")
    single: dict[str, Callable[[Settings], Server]] = {
        "kafka": KafkaServer,
        "cassandra": CassandraServer,
        "redis": RedisServer,
        "prometheus": PrometheusServer,
        "ingest": IngestService,
        "bronze": BronzeService,
        "api": ApiService,
    }
    indexes: set[int] = set()
    chosen: list[Server] = []
    for name in _ALL:
        if name == FEATURES_GROUP:
            if name in wanted:
                indexes.update(range(1, settings.services.features_workers + 1))
                if recorded:
                    indexes.update(_recorded_workers(settings))
            indexes.update(i for n in wanted if (i := features_index(n)) is not None)
            chosen += [FeaturesWorker(settings, i) for i in sorted(indexes)]
        elif name in SERVING_SERVICE_NAMES and name in wanted:
            chosen.append(GrpcService(settings, name))
        elif name in wanted:
            chosen.append(single[name](settings))
    return chosen


def _recorded_workers(settings: Settings) -> list[int]:
    """Indexes of the feature workers that have a pid record in the state directory."""
    found = []
    for record in settings.infra.state_dir.glob(f"{FEATURES_GROUP}-*/process.json"):
        index = features_index(record.parent.name)
        if index is not None:
            found.append(index)
    return sorted(found)


def service_endpoints(settings: Settings) -> list[tuple[str, str]]:
    """(name, URL) of what a person opens for each configured service, in start order."""
    found: list[tuple[str, str]] = [
        ("api", ApiService(settings).url + "/"),
        ("ingest", f"{settings.ingest.url}/docs"),
    ]
    for server in servers(settings, SERVICE_NAMES):
        if isinstance(server, GrpcService):
            found.append((server.name, f"grpc://{server.address}"))
        if isinstance(server, MetricsReadyService | GrpcService):
            found.append((server.name, server.metrics_url))
    return found


async def up(
    settings: Settings, names: Iterable[str] | None = None, progress: Progress = print
) -> list[StartResult]:
    """Start what is not running, in parallel, and wait until each answers a real request."""
    chosen = servers(settings, names)
    _check_distinct_ports(chosen)
    results = await asyncio.gather(*(_start(s, settings, progress) for s in chosen))
    return list(results)


def _check_distinct_ports(chosen: list[Server]) -> None:
    # Two of ours on one port would both find it free and then race for it.
    owner: dict[int, str] = {}
    for server in chosen:
        for port in server.ports:
            if port in owner:
                raise InfraError(
                    f"{owner[port]} and {server.name} are both configured for port {port}; "
                    "change one of them (see docs/infrastructure.md)"
                )
            owner[port] = server.name


async def _start(server: Server, settings: Settings, progress: Progress) -> StartResult:
    t0 = time.monotonic()
    record = read_record(server.record_path)
    if record is not None and record.alive:
        if record.address != server.address:
            group = "infra" if server.name in SERVER_NAMES else "services"
            raise InfraError(
                f"{server.name} already runs from this checkout on {record.address}, not on "
                f"{server.address}; stop it first (`recsys {group} down {server.name}`)"
            )
        await _wait_ready(server, settings.infra.start_timeout_s, t0)
        return StartResult(
            server.name,
            server.address,
            "already running",
            time.monotonic() - t0,
            record.pid,
            record.log,
            "",
        )
    busy = [p for p in server.ports if not port_is_free(_host(server), p)]
    if busy:
        holders = "; ".join(describe_listener(p) for p in busy)
        raise InfraError(
            f"{server.name}: port(s) {busy} are in use by a process this checkout's recsys did "
            f"not start ({holders}); stop it or choose other ports (see docs/infrastructure.md)"
        )
    progress(f"{server.name}: preparing")
    note = await asyncio.to_thread(server.prepare)
    argv = await asyncio.to_thread(launch_argv, server, settings)
    server.supervisor_path.unlink(missing_ok=True)  # a fresh start, a fresh history
    record = spawn(
        argv,
        address=server.address,
        record_path=server.record_path,
        log_path=server.log_path,
        cwd=server.home,
        env=server.env(),
    )
    progress(
        f"{server.name}: started pid {record.pid}, waiting for it to answer on {server.address}"
    )
    try:
        await _wait_ready(
            server, settings.infra.start_timeout_s, t0, exited=lambda: _exited(server, record)
        )
    except InfraError:
        terminate(record, timeout_s=settings.infra.stop_timeout_s)
        raise
    return StartResult(
        server.name, server.address, "started", time.monotonic() - t0, record.pid, record.log, note
    )


def launch_argv(server: Server, settings: Settings) -> list[str]:
    """The command line `up` runs: a service under its supervisor, a server as it is."""
    if not server.supervised:
        return server.argv()
    s = settings.services
    return supervise_argv(
        server.argv(),
        name=server.name,
        state=server.supervisor_path,
        log=server.log_path,
        backoff=Backoff(s.restart_backoff_s, s.restart_backoff_max_s, s.restart_reset_after_s),
        policy=s.restart_policy,
    )


def _exited(server: Server, record: ProcessRecord) -> bool:
    """Whether a process just started has exited (a supervised service: even once)."""
    if not record.alive:
        return True
    # A service that crashes before it is ready is misconfigured more often than unlucky:
    # `up` reports it and stops its supervisor rather than leave it crash-looping.
    state = read_state(server.supervisor_path) if server.supervised else None
    return state is not None and bool(state.exits)


async def _wait_ready(
    server: Server,
    timeout_s: float,
    t0: float,
    exited: Callable[[], bool] | None = None,
) -> None:
    last_error: BaseException | None = None
    while time.monotonic() - t0 < timeout_s:
        if exited is not None and exited():
            raise InfraError(
                f"{server.name} exited during startup; last lines of {server.log_path}:\n"
                + _tail(server)
            )
        try:
            await asyncio.wait_for(server.probe(), timeout=5)
            return
        except Exception as exc:  # any failure means "not yet"; the timeout decides
            last_error = exc
        await asyncio.sleep(0.5)
    raise InfraError(
        f"{server.name} did not answer within {timeout_s:.0f}s (last error: {last_error!r}); "
        f"last lines of {server.log_path}:\n{_tail(server)}"
    )


def _tail(server: Server) -> str:
    try:
        lines = server.log_path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:])


def _host(server: Server) -> str:
    return server.address.rsplit(":", 1)[0]


def down(
    settings: Settings, names: Iterable[str] | None = None, progress: Progress = print
) -> dict[str, str]:
    """Stop the servers we started (by recorded pid); anything else is left alone.

    The services (clients of the servers) go first and together: stopping feature workers one
    by one would hand each one's partitions to the others just before they stop too. Then the
    servers, one at a time in reverse start order.
    """
    chosen = list(reversed(servers(settings, names, recorded=True)))
    services = [s for s in chosen if s.name not in SERVER_NAMES]
    infra = [s for s in chosen if s.name in SERVER_NAMES]
    outcome: dict[str, str] = {}
    if services:
        with ThreadPoolExecutor(max_workers=len(services)) as pool:
            results = list(pool.map(lambda s: _stop(s, settings), services))
        for server, result in zip(services, results, strict=True):
            outcome[server.name] = result
            if result != _NOT_OURS:
                progress(f"{server.name}: {result}")
    for server in infra:
        result = _stop(server, settings)
        outcome[server.name] = result
        if result != _NOT_OURS:
            progress(f"{server.name}: {result}")
    return outcome


_NOT_OURS = "not started by recsys"


def _stop(server: Server, settings: Settings) -> str:
    record = read_record(server.record_path)
    if record is None:
        return _NOT_OURS
    result = terminate(record, timeout_s=settings.infra.stop_timeout_s)
    state = read_state(server.supervisor_path)
    if state is not None and (child := state.child()) is not None:
        # The service outlived its supervisor (killed by hand before the kernel's
        # parent-death signal stopped the service): stop it by the pid the supervisor recorded.
        result = _stop_orphan(child.pid, child.create_time(), record, settings)
    server.record_path.unlink(missing_ok=True)
    server.supervisor_path.unlink(missing_ok=True)
    return result


def _stop_orphan(pid: int, create_time: float, parent: ProcessRecord, settings: Settings) -> str:
    orphan = ProcessRecord(pid, create_time, parent.started_at, [], parent.log, parent.address)
    return terminate(orphan, timeout_s=settings.infra.stop_timeout_s)


async def status(settings: Settings, names: Iterable[str] | None = None) -> list[ServerStatus]:
    """Each server's state; "running" means its pid is ours and it answered a request.

    Feature workers beyond the configured count are listed only while they still run (unless
    named one by one).
    """
    configured = settings.services.features_workers
    named = set(names or SERVER_NAMES)
    chosen = [
        s
        for s in servers(settings, names, recorded=True)
        if s.name in named
        or not (isinstance(s, FeaturesWorker) and s.index > configured and not _alive(s))
    ]
    return list(await asyncio.gather(*(_status(s) for s in chosen)))


def _alive(server: Server) -> bool:
    record = read_record(server.record_path)
    return record is not None and record.alive


async def _status(server: Server) -> ServerStatus:
    record = read_record(server.record_path)
    supervision = read_state(server.supervisor_path) if server.supervised else None
    row = ServerStatus(
        server.name,
        server.address,
        "stopped",
        None,
        None,
        str(server.log_dir),
        str(server.data_dir),
        restarts=supervision.restarts if supervision else 0,
        last_exit=supervision.last_exit if supervision else None,
    )
    if record is None or not record.alive:
        return row  # what the supervisor recorded still says why the service last exited
    now = time.time()
    if supervision is None:  # a server, or a service whose supervisor has written nothing yet
        uptime = now - record.started_at
        return dataclasses.replace(row, state=await _probe(server), pid=record.pid, uptime_s=uptime)
    if supervision.phase == "backoff" and supervision.next_start_at is not None:
        wait = max(0.0, supervision.next_start_at - now)
        return dataclasses.replace(row, state="restarting", pid=record.pid, restart_in_s=wait)
    child = supervision.child()
    started = supervision.child_started_at
    state = await _probe(server)
    detail = await server.detail() if isinstance(server, GrpcService) else ""
    return dataclasses.replace(
        row,
        state=state,
        pid=record.pid,
        service_pid=child.pid if child else None,
        uptime_s=now - started if child and started else None,
        detail=detail,
    )


async def _probe(server: Server) -> str:
    try:
        await asyncio.wait_for(server.probe(), timeout=5)
    except Exception:
        return "not answering"
    return "running"
