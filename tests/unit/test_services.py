"""The services `recsys services` manages: names, ports, environments, readiness, no servers."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from pydantic import ValidationError

from recsys.cli.processes import status_line
from recsys.cli.services import endpoint_lines
from recsys.config import InfraSettings, IngestSettings, ServicesSettings, Settings
from recsys.infra import manager
from recsys.infra.process import spawn, terminate
from recsys.infra.server import InfraError
from recsys.infra.services import (
    BronzeService,
    FeaturesWorker,
    IngestService,
    features_index,
    features_worker_name,
    metric_value,
)
from recsys.infra.supervise import ExitRecord, SupervisorState, write_state


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults are under test: the developer's own RECSYS_ variables must not leak in."""
    for var in [v for v in os.environ if v.startswith("RECSYS_")]:
        monkeypatch.delenv(var)


def _settings(tmp_path: Path, **services: Any) -> Settings:
    return Settings(_env_file=None).model_copy(  # type: ignore[call-arg]
        update={
            "infra": InfraSettings(state_dir=tmp_path / "state"),
            "services": ServicesSettings.model_validate(services),
        }
    )


def test_defaults() -> None:
    s = ServicesSettings()
    assert (s.features_workers, s.features_metrics_port, s.bronze_metrics_port) == (1, 9101, 9100)
    assert (s.restart_policy, s.restart_backoff_s, s.restart_backoff_max_s) == ("always", 1, 60)
    assert s.restart_reset_after_s == 120


def test_each_worker_gets_the_base_port_plus_its_index() -> None:
    s = ServicesSettings(features_workers=3, features_metrics_port=19101, bronze_metrics_port=19100)
    assert [s.features_port(i) for i in (1, 2, 3)] == [19101, 19102, 19103]
    with pytest.raises(ValueError, match="numbered from 1"):
        s.features_port(0)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"features_workers": 2, "bronze_metrics_port": 9102}, "falls inside"),
        ({"features_workers": 1, "bronze_metrics_port": 9101}, "falls inside"),
        ({"features_workers": 3, "features_metrics_port": 65534}, "past port 65535"),
        ({"features_workers": 0}, "features_workers"),
        ({"restart_backoff_s": 10, "restart_backoff_max_s": 5}, "below restart_backoff_s 10"),
        ({"restart_backoff_s": 0}, "restart_backoff_s"),
        ({"restart_policy": "sometimes"}, "restart_policy"),
    ],
)
def test_overlapping_or_impossible_settings_are_refused(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        ServicesSettings.model_validate(values)


def test_settings_come_from_the_services_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_SERVICES__FEATURES_WORKERS", "2")
    monkeypatch.setenv("RECSYS_SERVICES__FEATURES_METRICS_PORT", "19101")
    monkeypatch.setenv("RECSYS_SERVICES__BRONZE_METRICS_PORT", "19100")
    s = Settings(_env_file=None).services  # type: ignore[call-arg]
    assert (s.features_workers, s.features_port(2), s.bronze_metrics_port) == (2, 19102, 19100)


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("features-1", 1),
        ("features-12", 12),
        ("features", None),
        ("features-0", None),
        ("features-01", None),
        ("features-x", None),
        ("bronze", None),
        ("xfeatures-1", None),
    ],
)
def test_worker_names(name: str, index: int | None) -> None:
    assert features_index(name) == index
    if index is not None:
        assert features_worker_name(index) == name


def test_the_features_group_expands_to_the_configured_workers(tmp_path: Path) -> None:
    s = _settings(tmp_path, features_workers=2)
    chosen = manager.servers(s, manager.STREAM_SERVICE_NAMES)
    assert [c.name for c in chosen] == ["ingest", "features-1", "features-2", "bronze"]
    assert [c.address for c in chosen[1:]] == ["127.0.0.1:9101", "127.0.0.1:9102", "127.0.0.1:9100"]
    # Each its own home (pid record, log), metrics port and Faust data directory.
    homes = {c.home for c in chosen}
    assert len(homes) == 4
    assert {c.log_path.name for c in chosen} == {
        "ingest.out",
        "features-1.out",
        "features-2.out",
        "bronze.out",
    }
    w1, w2, bronze = chosen[1:]
    assert w1.env() == {
        "RECSYS_METRICS__PORT": "9101",
        "RECSYS_FEATURES__DATA_DIR": str(tmp_path / "state" / "features-1" / "data"),
        # Static group membership: a restarted worker takes its partitions back at once.
        "RECSYS_FEATURES__INSTANCE_ID": "features-1",
    }
    assert w2.env()["RECSYS_METRICS__PORT"] == "9102"
    assert w2.env()["RECSYS_FEATURES__INSTANCE_ID"] == "features-2"
    assert bronze.env() == {"RECSYS_METRICS__PORT": "9100"}
    assert chosen[0].env() == {}


def test_a_configured_data_dir_is_split_per_worker(tmp_path: Path) -> None:
    s = _settings(tmp_path, features_workers=2)
    s = s.model_copy(update={"features": s.features.model_copy(update={"data_dir": tmp_path})})
    dirs = [FeaturesWorker(s, i).env()["RECSYS_FEATURES__DATA_DIR"] for i in (1, 2)]
    assert dirs == [str(tmp_path / "features-1"), str(tmp_path / "features-2")]


def test_a_single_worker_can_be_named(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    (w,) = manager.servers(s, ["features-3"])
    assert (w.name, w.address) == ("features-3", "127.0.0.1:9103")
    with pytest.raises(InfraError, match=r"unknown server.*features-<n>"):
        manager.servers(s, ["features-0"])


def _record(state: Path, name: str) -> None:
    """A pid record of a process that is gone (pid 1 with another start time is not ours)."""
    (state / name).mkdir(parents=True)
    record = {"pid": 1, "create_time": 0.0, "started_at": 0.0, "argv": [], "log": "", "address": ""}
    (state / name / "process.json").write_text(json.dumps(record))


def test_down_and_status_take_in_workers_an_earlier_up_started(tmp_path: Path) -> None:
    s = _settings(tmp_path, features_workers=1)
    _record(s.infra.state_dir, "features-3")
    _record(s.infra.state_dir, "bronze")
    assert [c.name for c in manager.servers(s, ["features"])] == ["features-1"]
    assert [c.name for c in manager.servers(s, ["features"], recorded=True)] == [
        "features-1",
        "features-3",
    ]
    # Only the group pulls them in, and `infra` names never do.
    assert [c.name for c in manager.servers(s, ["bronze"], recorded=True)] == ["bronze"]
    assert manager.servers(s, recorded=True)[-1].name == "prometheus"


def test_status_lists_an_extra_worker_only_while_it_runs(tmp_path: Path) -> None:
    s = _settings(tmp_path, features_workers=1)
    _record(s.infra.state_dir, "features-2")
    rows = asyncio.run(manager.status(s, ["features"]))
    assert [(r.name, r.state) for r in rows] == [("features-1", "stopped")]
    rows = asyncio.run(manager.status(s, ["features-2"]))
    assert [(r.name, r.state) for r in rows] == [("features-2", "stopped")]


def test_down_clears_a_stale_record_and_leaves_the_rest_alone(tmp_path: Path) -> None:
    s = _settings(tmp_path, features_workers=1)
    _record(s.infra.state_dir, "features-2")
    outcome = manager.down(s, manager.STREAM_SERVICE_NAMES, progress=lambda _: None)
    assert outcome == {
        "bronze": "not started by recsys",
        "features-2": "not running",
        "features-1": "not started by recsys",
        "ingest": "not started by recsys",
    }
    assert not (s.infra.state_dir / "features-2" / "process.json").exists()


def test_up_refuses_two_services_on_one_port(tmp_path: Path) -> None:
    s = _settings(tmp_path).model_copy(update={"ingest": IngestSettings(port=9101)})
    with pytest.raises(InfraError, match="ingest and features-1 are both configured for port 9101"):
        asyncio.run(manager.up(s, manager.STREAM_SERVICE_NAMES, progress=lambda _: None))
    assert not s.infra.state_dir.exists()  # refused before anything started


EXPOSITION = """\
# HELP recsys_features_ready 1 once ready.
# TYPE recsys_features_ready gauge
recsys_features_ready 1.0
# TYPE recsys_features_consumer_lag gauge
recsys_features_consumer_lag{partition="0",topic="t"} 1.0
recsys_bronze_ready 0.0
"""


def test_metric_value_reads_unlabelled_samples() -> None:
    assert metric_value(EXPOSITION, "recsys_features_ready") == 1.0
    assert metric_value(EXPOSITION, "recsys_bronze_ready") == 0.0
    assert metric_value(EXPOSITION, "recsys_features_consumer_lag") is None
    assert metric_value(EXPOSITION, "recsys_missing") is None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def exporter() -> Iterator[tuple[int, CollectorRegistry]]:
    registry = CollectorRegistry()
    port = _free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield port, registry
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_the_probe_waits_for_the_readiness_gauge(
    tmp_path: Path, exporter: tuple[int, CollectorRegistry]
) -> None:
    port, registry = exporter
    service = BronzeService(_settings(tmp_path, bronze_metrics_port=port))
    with pytest.raises(InfraError, match="recsys_bronze_ready is absent"):
        asyncio.run(service.probe())
    ready = Gauge("recsys_bronze_ready", "ready", registry=registry)
    with pytest.raises(InfraError, match="recsys_bronze_ready is 0"):
        asyncio.run(service.probe())
    ready.set(1)
    asyncio.run(service.probe())


def test_endpoint_lines_name_every_service(tmp_path: Path) -> None:
    s = _settings(tmp_path, features_workers=2)
    lines = endpoint_lines(s, manager.service_endpoints(s))
    assert lines == [
        "Recommendations: http://127.0.0.1:8080/  (web page; the API: http://127.0.0.1:8080/docs)",
        "Ingest API:  http://127.0.0.1:8081/docs  (X-API-Key: local-dev-key; curl example in "
        "README.md)",
        "Metrics:     http://127.0.0.1:9101/metrics  (features-1)",
        "Metrics:     http://127.0.0.1:9102/metrics  (features-2)",
        "Metrics:     http://127.0.0.1:9100/metrics  (bronze)",
        "gRPC:        127.0.0.1:50051  (featurestore; docs/serving.md)",
        "Metrics:     http://127.0.0.1:9201/metrics  (featurestore)",
        "gRPC:        127.0.0.1:50052  (candidates; docs/serving.md)",
        "Metrics:     http://127.0.0.1:9202/metrics  (candidates)",
        "gRPC:        127.0.0.1:50053  (ranker; docs/serving.md)",
        "Metrics:     http://127.0.0.1:9203/metrics  (ranker)",
        "gRPC:        127.0.0.1:50054  (experiments; docs/serving.md)",
        "Metrics:     http://127.0.0.1:9204/metrics  (experiments)",
    ]
    private = s.model_copy(update={"ingest": IngestSettings(api_keys="secret")})
    assert (
        "X-API-Key: one of RECSYS_INGEST__API_KEYS"
        in endpoint_lines(private, manager.service_endpoints(private))[1]
    )


# --- supervision: what `up` runs, what `status` says, what `down` stops ---------------------


def test_services_run_under_a_supervisor_with_the_configured_backoff(tmp_path: Path) -> None:
    s = _settings(
        tmp_path,
        restart_policy="on-failure",
        restart_backoff_s=2,
        restart_backoff_max_s=30,
        restart_reset_after_s=90,
    )
    ingest = IngestService(s)
    argv = manager.launch_argv(ingest, s)
    assert argv[:3] == [sys.executable, "-m", "recsys.infra.supervise"]
    assert argv[argv.index("--") + 1 :] == ingest.argv()
    assert {
        "--name=ingest",
        f"--state={s.infra.state_dir / 'ingest' / 'supervisor.json'}",
        f"--log={ingest.log_path}",
        "--backoff-s=2.0",
        "--backoff-max-s=30.0",
        "--reset-after-s=90.0",
        "--restart=on-failure",
    } <= set(argv)
    assert all(s.supervised for s in manager.servers(s, manager.STREAM_SERVICE_NAMES))
    assert not any(s.supervised for s in manager.servers(s, manager.SERVER_NAMES))


def _ours(server_home: Path, pid: int) -> None:
    """A pid record naming the live process ``pid`` (as `up` writes it)."""
    server_home.mkdir(parents=True, exist_ok=True)
    record = {
        "pid": pid,
        "create_time": psutil.Process(pid).create_time(),
        "started_at": time.time() - 100,
        "argv": [],
        "log": "",
        "address": "",
    }
    (server_home / "process.json").write_text(json.dumps(record))


def _crashed(at: float) -> ExitRecord:
    return ExitRecord.of(
        1, at=at, ran_s=3.0, log_tail=["Traceback (most recent call last):", "RuntimeError: boom"]
    )


def test_status_says_a_service_waits_to_restart_and_why_it_exited(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    home = s.infra.state_dir / "bronze"
    _ours(home, os.getpid())  # this test's process stands for the supervisor
    now = time.time()
    state = SupervisorState("bronze", os.getpid(), "always", phase="backoff", restarts=2)
    state.next_start_at = now + 30
    state.exits += [_crashed(now - 60), _crashed(now - 1)]
    write_state(home / "supervisor.json", state)

    (row,) = asyncio.run(manager.status(s, ["bronze"]))
    assert (row.state, row.pid, row.service_pid, row.restarts) == (
        "restarting",
        os.getpid(),
        None,
        2,
    )
    assert row.last_exit == state.exits[-1]
    assert row.restart_in_s is not None
    assert 0 < row.restart_in_s <= 30
    line = status_line(row)
    clock = time.strftime("%H:%M:%S", time.localtime(now - 1))
    assert line.endswith(f"restarted 2 times (last: exit 1 at {clock}: RuntimeError: boom)"), line
    assert "restarting" in line
    assert "next start in" in line


def test_status_of_a_running_service_names_its_process_and_uptime(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    home = s.infra.state_dir / "bronze"
    _ours(home, os.getpid())
    me = psutil.Process()
    state = SupervisorState("bronze", os.getpid(), "always", phase="running", restarts=1)
    state.child_pid, state.child_create_time = me.pid, me.create_time()
    state.child_started_at = time.time() - 5
    state.exits.append(ExitRecord.of(-9, at=time.time() - 6, ran_s=40.0, log_tail=["working"]))
    write_state(home / "supervisor.json", state)
    (row,) = asyncio.run(manager.status(s, ["bronze"]))
    # Nothing answers on its port here, so it is not ready: the probe still decides.
    assert (row.state, row.service_pid, row.restarts) == ("not answering", me.pid, 1)
    assert row.uptime_s is not None
    assert 5 <= row.uptime_s < 100
    assert "restarted 1 time (last: signal SIGKILL at " in status_line(row)


def test_a_stopped_service_still_says_why_it_last_exited(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    _record(s.infra.state_dir, "ingest")  # a supervisor that is gone
    state = SupervisorState("ingest", 1, "never", phase="exited")
    state.exits.append(_crashed(time.time()))
    write_state(s.infra.state_dir / "ingest" / "supervisor.json", state)
    (row,) = asyncio.run(manager.status(s, ["ingest"]))
    assert (row.state, row.pid, row.restarts, row.last_exit) == ("stopped", None, 0, state.exits[0])
    assert "(last: exit 1 at " in status_line(row)
    # Servers have no supervisor: no history, and the line ends at the logs.
    plain = manager.ServerStatus("redis", "127.0.0.1:6379", "running", 7, 3.0, "/l", "/d")
    assert status_line(plain).endswith("logs /l")


def test_down_stops_a_service_that_outlived_its_supervisor(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    home = s.infra.state_dir / "ingest"
    orphan = spawn(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        address="",
        record_path=tmp_path / "orphan.json",
        log_path=tmp_path / "orphan.out",
        cwd=tmp_path,
    )
    try:
        _record(s.infra.state_dir, "ingest")  # its supervisor is gone
        state = SupervisorState("ingest", 1, "always", phase="running")
        state.child_pid, state.child_create_time = orphan.pid, orphan.create_time
        write_state(home / "supervisor.json", state)
        assert manager.down(s, ["ingest"], progress=lambda _: None) == {"ingest": "stopped"}
        assert not orphan.alive
        assert not (home / "process.json").exists()
        assert not (home / "supervisor.json").exists()
    finally:
        terminate(orphan, timeout_s=5)
