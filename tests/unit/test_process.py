from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from recsys.infra.process import ProcessRecord, read_record, spawn, terminate
from recsys.infra.supervise import (
    LOG_PREFIX,
    Backoff,
    ExitRecord,
    RestartPolicy,
    SupervisorState,
    log_tail,
    read_state,
    should_restart,
    supervise_argv,
    write_state,
)


def _sleeper(tmp_path: Path, code: str = "import time; time.sleep(60)") -> Path:
    record_path = tmp_path / "process.json"
    spawn(
        [sys.executable, "-c", code],
        address="127.0.0.1:1",
        record_path=record_path,
        log_path=tmp_path / "logs" / "out.log",
        cwd=tmp_path,
    )
    return record_path


def test_spawned_process_is_recorded_and_stopped(tmp_path: Path) -> None:
    record = read_record(_sleeper(tmp_path))
    assert record is not None
    assert record.alive
    assert terminate(record, timeout_s=5) == "stopped"
    assert record.process() is None
    assert terminate(record, timeout_s=5) == "not running"


def test_process_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    path = _sleeper(tmp_path, code)
    record = read_record(path)
    assert record is not None
    log = Path(record.log)
    deadline = time.monotonic() + 10
    while "ready" not in log.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert terminate(record, timeout_s=0.5) == "killed after timeout"
    assert not record.alive


def test_a_reused_pid_is_not_ours(tmp_path: Path) -> None:
    record = read_record(_sleeper(tmp_path))
    assert record is not None
    impostor = dataclasses.replace(record, create_time=record.create_time - 3600)
    assert not impostor.alive
    assert terminate(impostor, timeout_s=1) == "not running"
    assert record.alive  # untouched
    terminate(record, timeout_s=5)


def test_torn_or_missing_records_are_ignored(tmp_path: Path) -> None:
    assert read_record(tmp_path / "absent.json") is None
    (tmp_path / "torn.json").write_text('{"pid": 1')
    assert read_record(tmp_path / "torn.json") is None
    (tmp_path / "foreign.json").write_text(json.dumps({"pid": 1}))
    assert read_record(tmp_path / "foreign.json") is None


# --- the supervisor (recsys.infra.supervise) ------------------------------------------------
# Real processes, no servers: a supervisor spawned the way `recsys services up` spawns one,
# around a tiny Python child.


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (40, 5.0), (10**6, 5.0)],
)
def test_the_backoff_doubles_up_to_its_cap(failures: int, delay: float) -> None:
    assert Backoff(0.5, 5.0, 60.0).delay(failures) == delay


def test_a_run_longer_than_reset_after_starts_the_count_again() -> None:
    backoff = Backoff(1.0, 60.0, reset_after_s=30.0)
    assert backoff.failures_after(0, ran_s=0.1) == 1
    assert backoff.failures_after(4, ran_s=29.9) == 5
    assert backoff.failures_after(4, ran_s=30.0) == 1
    with pytest.raises(ValueError, match="start at 1"):
        backoff.delay(0)


@pytest.mark.parametrize(
    ("policy", "code", "restart"),
    [
        ("always", 0, True),
        ("always", 1, True),
        ("on-failure", 0, False),
        ("on-failure", 1, True),
        ("on-failure", -9, True),
        ("never", 1, False),
    ],
)
def test_restart_policies(policy: RestartPolicy, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


def test_an_exit_says_why_and_when() -> None:
    at = time.mktime((2026, 1, 2, 10, 42, 3, 0, 0, -1))
    crashed = ExitRecord.of(1, at=at, ran_s=2.0, log_tail=["Traceback ...", "RuntimeError: boom"])
    assert (crashed.code, crashed.signal, crashed.reason) == (1, None, "exit 1")
    assert crashed.describe() == "exit 1 at 10:42:03: RuntimeError: boom"
    killed = ExitRecord.of(-signal.SIGKILL, at=at, ran_s=2.0, log_tail=["an ordinary line"])
    assert (killed.code, killed.signal) == (None, "SIGKILL")
    # After a signal the log's last line is not the reason: left out.
    assert killed.describe() == "signal SIGKILL at 10:42:03"
    long = ExitRecord.of(2, at=at, ran_s=0.0, log_tail=["x" * 300])
    assert long.describe().endswith(": " + "x" * 157 + "...")
    failed = ExitRecord(at, None, None, "[Errno 2] No such file", 0.0, [], 1.0)
    assert failed.reason == "could not start: [Errno 2] No such file"


def test_the_reason_is_the_last_error_line_without_its_timestamp() -> None:
    # What uvicorn logs when its port is taken: the error, then its shutdown.
    tail = [
        "2026-11-29T11:10:28.481162Z [info     ] Application startup complete.  service=ingest",
        "2026-11-29T11:10:28.484588Z [error    ] [Errno 98] error while attempting to bind on "
        "address ('127.0.0.1', 8081): address already in use service=ingest",
        "2026-11-29T11:10:28.484791Z [info     ] Waiting for application shutdown. service=ingest",
        "2026-11-29T11:10:28.486309Z [info     ] Application shutdown complete. service=ingest",
    ]
    record = ExitRecord.of(3, at=0.0, ran_s=2.0, log_tail=tail)
    assert record.log_reason == tail[1]
    assert record.describe().endswith(
        ": [error ] [Errno 98] error while attempting to bind on address ('127.0.0.1', 8081): "
        "address already in use service=ingest"
    )
    quiet = ExitRecord.of(0, at=0.0, ran_s=2.0, log_tail=["done", "bye"])
    assert quiet.log_reason == "bye"
    assert ExitRecord.of(1, at=0.0, ran_s=0.0, log_tail=[]).log_reason is None


def test_state_files_round_trip_and_torn_ones_are_ignored(tmp_path: Path) -> None:
    state = SupervisorState(name="x", supervisor_pid=1, policy="always", restarts=2)
    state.exits.append(ExitRecord.of(1, at=1.0, ran_s=0.5, log_tail=["boom"]))
    write_state(tmp_path / "s.json", state)
    assert read_state(tmp_path / "s.json") == state
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, renamed
    (tmp_path / "torn.json").write_text('{"name": "x", "exits": [')
    assert read_state(tmp_path / "torn.json") is None
    (tmp_path / "foreign.json").write_text('{"pid": 1}')
    assert read_state(tmp_path / "foreign.json") is None
    assert read_state(tmp_path / "absent.json") is None


def test_the_log_tail_skips_the_supervisors_own_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.out"
    log.write_text(f"a\nb\n\n{LOG_PREFIX} x: started pid 1\nc\n{LOG_PREFIX} x: exit 1\n")
    assert log_tail(log, lines=2) == ["b", "c"]
    assert log_tail(tmp_path / "absent.out") == []


@dataclasses.dataclass
class Supervised:
    record: ProcessRecord
    state_path: Path
    log: Path

    def state(self) -> SupervisorState:
        state = read_state(self.state_path)
        assert state is not None
        return state

    def wait_for(self, check: Callable[[SupervisorState], bool], what: str) -> SupervisorState:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = read_state(self.state_path)
            if state is not None and check(state):
                return state
            time.sleep(0.05)
        raise AssertionError(f"no {what} within 60 s; state {read_state(self.state_path)}")


def _supervise(
    tmp_path: Path, code: str, *, backoff: Backoff, policy: RestartPolicy = "always"
) -> Supervised:
    state_path, log = tmp_path / "supervisor.json", tmp_path / "logs" / "x.out"
    argv = supervise_argv(
        [sys.executable, "-c", code],
        name="x",
        state=state_path,
        log=log,
        backoff=backoff,
        policy=policy,
    )
    record = spawn(
        argv,
        address="127.0.0.1:1",
        record_path=tmp_path / "process.json",
        log_path=log,
        cwd=tmp_path,
    )
    return Supervised(record, state_path, log)


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[list[Supervised]]:
    started: list[Supervised] = []
    yield started
    for s in started:  # whatever a failed assertion left running
        terminate(s.record, timeout_s=5)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_crashing_service_is_restarted_with_growing_delays(
    tmp_path: Path, supervised: list[Supervised]
) -> None:
    code = "import sys; print('starting', flush=True); print('boom', flush=True); sys.exit(3)"
    s = _supervise(tmp_path, code, backoff=Backoff(0.1, 0.4, reset_after_s=60))
    supervised.append(s)
    state = s.wait_for(lambda st: len(st.exits) >= 5, "five exits")
    exits = state.exits[:5]
    assert [e.code for e in exits] == [3] * 5
    assert [e.log_tail[-2:] for e in exits] == [["starting", "boom"]] * 5
    # Doubling up to the cap, and each restart came no sooner than its delay: not a hot loop.
    assert [e.restart_in_s for e in exits] == [0.1, 0.2, 0.4, 0.4, 0.4]
    for earlier, later in itertools.pairwise(exits):
        assert earlier.restart_in_s is not None
        assert later.at - earlier.at >= earlier.restart_in_s
    assert state.restarts >= 4
    assert "exit 3 after" in s.log.read_text()
    assert terminate(s.record, timeout_s=5) == "stopped"
    assert s.state().phase == "stopped"


def test_a_killed_service_comes_back_and_sigterm_stops_both(
    tmp_path: Path, supervised: list[Supervised]
) -> None:
    code = (
        "import signal, sys, time\n"
        "def stop(*_):\n"
        "    print('graceful stop', flush=True); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('serving', flush=True)\n"
        "time.sleep(600)\n"
    )
    s = _supervise(tmp_path, code, backoff=Backoff(0.1, 1.0, reset_after_s=60))
    supervised.append(s)
    first = s.wait_for(lambda st: st.phase == "running", "first start")
    assert first.child_pid is not None
    s.wait_for(lambda _: s.log.read_text().splitlines().count("serving") == 1, "serving")
    os.kill(first.child_pid, signal.SIGKILL)
    state = s.wait_for(
        lambda st: st.phase == "running" and st.child_pid not in (None, first.child_pid),
        "a restart",
    )
    assert state.restarts == 1
    last = state.last_exit
    assert last is not None
    assert (last.signal, last.code, last.restart_in_s) == ("SIGKILL", None, 0.1)
    assert state.child() is not None
    child_pid = state.child_pid
    assert child_pid is not None
    s.wait_for(lambda _: s.log.read_text().splitlines().count("serving") == 2, "a 2nd serving")
    # SIGTERM to the supervisor only: it forwards it, the service stops gracefully, then both
    # are gone; the last stop is not recorded as a crash.
    assert terminate(s.record, timeout_s=10) == "stopped"
    assert _gone(child_pid)
    assert "graceful stop" in s.log.read_text()
    final = s.state()
    assert (final.phase, final.restarts, len(final.exits)) == ("stopped", 1, 1)


def test_the_service_gets_sigterm_when_its_supervisor_dies(
    tmp_path: Path, supervised: list[Supervised]
) -> None:
    s = _supervise(tmp_path, "import time; time.sleep(600)", backoff=Backoff(1, 1, 60))
    supervised.append(s)
    state = s.wait_for(lambda st: st.phase == "running", "a start")
    child = state.child()
    assert child is not None
    os.kill(s.record.pid, signal.SIGKILL)
    assert psutil.wait_procs([child], timeout=10)[1] == []  # no orphan left behind


def test_with_restart_never_an_exit_is_recorded_and_the_supervisor_ends(
    tmp_path: Path, supervised: list[Supervised]
) -> None:
    code = "import sys; print('bad config', flush=True); sys.exit(2)"
    s = _supervise(tmp_path, code, backoff=Backoff(0.1, 0.1, 60), policy="never")
    supervised.append(s)
    state = s.wait_for(lambda st: st.phase == "exited", "the exit")
    assert (state.restarts, len(state.exits)) == (0, 1)
    last = state.last_exit
    assert last is not None
    assert (last.code, last.restart_in_s, last.log_tail) == (2, None, ["bad config"])
    assert psutil.wait_procs([psutil.Process(s.record.pid)], timeout=10)[1] == []


def test_a_service_that_ran_long_enough_restarts_after_the_first_delay_again(
    tmp_path: Path, supervised: list[Supervised]
) -> None:
    code = "import sys, time; time.sleep(0.3); sys.exit(1)"
    s = _supervise(tmp_path, code, backoff=Backoff(0.1, 10.0, reset_after_s=0.2))
    supervised.append(s)
    state = s.wait_for(lambda st: len(st.exits) >= 3, "three exits")
    assert [e.restart_in_s for e in state.exits[:3]] == [0.1, 0.1, 0.1]


def test_a_command_that_cannot_start_is_retried(
    tmp_path: Path, supervised: list[Supervised]
) -> None:
    state_path, log = tmp_path / "supervisor.json", tmp_path / "x.out"
    argv = supervise_argv(
        [str(tmp_path / "no-such-program")],
        name="x",
        state=state_path,
        log=log,
        backoff=Backoff(0.1, 0.2, 60),
        policy="always",
    )
    record = spawn(argv, address="", record_path=tmp_path / "p.json", log_path=log, cwd=tmp_path)
    s = Supervised(record, state_path, log)
    supervised.append(s)
    state = s.wait_for(lambda st: len(st.exits) >= 2, "two failed starts")
    assert state.exits[0].reason.startswith("could not start: [Errno 2]")
    assert [e.restart_in_s for e in state.exits[:2]] == [0.1, 0.2]
