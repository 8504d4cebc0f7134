"""Keep one service running: restart it when it exits, waiting longer after each quick crash.

    python -m recsys.infra.supervise --name features-1 --state .recsys/features-1/supervisor.json \
        --log .recsys/features-1/logs/features-1.out -- .venv/bin/recsys-features

This is what `recsys services up` starts for each service (its pid is the one in the service's
``process.json``); the service runs as its child. Like Kubernetes' CrashLoopBackOff, the n-th
restart in a row waits ``min(backoff_max_s, backoff_s * 2 ** (n - 1))``, and a service that ran
for ``reset_after_s`` before it exited counts as healthy again, so its next restart waits
``backoff_s``. Every exit (time, exit code or signal, run time, the last lines of the log) and
the restart count go to a JSON state file beside the pid record, which `recsys services status`
reads. SIGTERM (or SIGINT) is forwarded to the service, and the supervisor exits when it does;
if the supervisor itself dies, the kernel sends the service SIGTERM (``PR_SET_PDEATHSIG``).

Standard library (and psutil) only: one runs per service, so it stays small and starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import psutil

__all__ = [
    "Backoff",
    "ExitRecord",
    "RestartPolicy",
    "SupervisorState",
    "log_tail",
    "main",
    "read_state",
    "should_restart",
    "supervise_argv",
    "write_state",
]

RestartPolicy = Literal["always", "on-failure", "never"]
Phase = Literal["starting", "running", "backoff", "stopped", "exited"]

LOG_PREFIX = "recsys-supervise:"  # marks our own lines in the service's log
_KEPT_EXITS = 10
_TAIL_LINES = 10
_REASON_CHARS = 160
_ERROR_LINE = re.compile(r"error|exception|critical|fatal|traceback|killed", re.IGNORECASE)
_LOG_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[T ][\d:.,]+Z?\s*")
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before the n-th restart in a row."""

    backoff_s: float
    backoff_max_s: float
    reset_after_s: float

    def delay(self, failures_in_a_row: int) -> float:
        """``backoff_s`` doubled per earlier failure in a row, capped at ``backoff_max_s``."""
        if failures_in_a_row < 1:
            raise ValueError(f"failures in a row start at 1, not {failures_in_a_row}")
        # Past 2**64 the float would overflow; the cap has long been reached by then.
        exponent = min(failures_in_a_row - 1, 64)
        return float(min(self.backoff_max_s, self.backoff_s * 2**exponent))

    def failures_after(self, previous: int, ran_s: float) -> int:
        """The count of failures in a row once a run of ``ran_s`` seconds has ended."""
        return 1 if ran_s >= self.reset_after_s else previous + 1


def should_restart(policy: RestartPolicy, code: int | None) -> bool:
    """Kubernetes' restartPolicy: a signal (negative code) or a failed start is a failure too."""
    if policy == "always":
        return True
    if policy == "on-failure":
        return code != 0
    return False


@dataclass(frozen=True, slots=True)
class ExitRecord:
    at: float  # epoch seconds
    code: int | None  # exit status; None if killed by a signal or never started
    signal: str | None  # e.g. "SIGKILL"
    error: str | None  # why it could not be started at all
    ran_s: float
    log_tail: list[str]  # its log's last lines, without the supervisor's own
    restart_in_s: float | None  # None: not restarted (policy, or the supervisor was stopped)

    @classmethod
    def of(cls, returncode: int, *, at: float, ran_s: float, log_tail: list[str]) -> ExitRecord:
        """From a ``Popen.returncode``: negative means killed by that signal."""
        if returncode < 0:
            try:
                name = signal.Signals(-returncode).name
            except ValueError:
                name = f"signal {-returncode}"
            return cls(at, None, name, None, ran_s, log_tail, None)
        return cls(at, returncode, None, None, ran_s, log_tail, None)

    @property
    def reason(self) -> str:
        """``exit 1``, ``signal SIGKILL`` or ``could not start: ...``."""
        if self.error is not None:
            return f"could not start: {self.error}"
        if self.signal is not None:
            return f"signal {self.signal}"
        return f"exit {self.code}"

    @property
    def log_reason(self) -> str | None:
        """The log line that most likely says why: the last one that reads like an error.

        A service usually logs its shutdown after the error that ended it (uvicorn: "Waiting
        for application shutdown."), so the very last line is rarely the reason.
        """
        for line in reversed(self.log_tail):
            if _ERROR_LINE.search(line):
                return line
        return self.log_tail[-1] if self.log_tail else None

    def describe(self) -> str:
        """One line for `services status`: the reason, when, and for an exit its log's reason.

        After a signal the log says what the service was doing, not why it died: left out.
        """
        text = f"{self.reason} at {time.strftime('%H:%M:%S', time.localtime(self.at))}"
        line = self.log_reason if self.signal is None else None
        if line:
            # Its own timestamp and column padding add nothing to ours.
            line = " ".join(_LOG_TIMESTAMP.sub("", line).split())
            text += f": {line[: _REASON_CHARS - 3] + '...' if len(line) > _REASON_CHARS else line}"
        return text


@dataclass(slots=True)
class SupervisorState:
    """What the supervisor writes after every change; `recsys services status` reads it."""

    name: str
    supervisor_pid: int
    policy: RestartPolicy
    phase: Phase = "starting"
    child_pid: int | None = None
    child_create_time: float | None = None
    child_started_at: float | None = None
    restarts: int = 0
    next_start_at: float | None = None
    exits: list[ExitRecord] = field(default_factory=list)  # the last few, oldest first

    @property
    def last_exit(self) -> ExitRecord | None:
        return self.exits[-1] if self.exits else None

    def child(self) -> psutil.Process | None:
        """The running service this state names, or None (gone, or its pid was reused)."""
        if self.child_pid is None or self.child_create_time is None:
            return None
        try:
            proc = psutil.Process(self.child_pid)
            if abs(proc.create_time() - self.child_create_time) > 1.0:
                return None
            return None if proc.status() == psutil.STATUS_ZOMBIE else proc
        except psutil.Error:
            return None


def read_state(path: Path) -> SupervisorState | None:
    """The state file, or None if it is missing, torn or not ours."""
    try:
        raw = json.loads(path.read_text())
        exits = [ExitRecord(**e) for e in raw.pop("exits")]
        return SupervisorState(**raw, exits=exits)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def write_state(path: Path, state: SupervisorState) -> None:
    """Replace the state file atomically: a reader sees the old or the new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(path)


def log_tail(path: Path, lines: int = _TAIL_LINES) -> list[str]:
    """The last non-empty lines of ``path`` that the supervisor did not write itself."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16_384))
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    kept = [ln.rstrip() for ln in text.splitlines() if ln.strip() and LOG_PREFIX not in ln]
    return kept[-lines:]


def supervise_argv(
    argv: Sequence[str],
    *,
    name: str,
    state: Path,
    log: Path,
    backoff: Backoff,
    policy: RestartPolicy,
) -> list[str]:
    """The command line that runs ``argv`` under a supervisor."""
    return [
        sys.executable,
        "-m",
        "recsys.infra.supervise",
        f"--name={name}",
        f"--state={state}",
        f"--log={log}",
        f"--backoff-s={backoff.backoff_s}",
        f"--backoff-max-s={backoff.backoff_max_s}",
        f"--reset-after-s={backoff.reset_after_s}",
        f"--restart={policy}",
        "--",
        *argv,
    ]


# --- the supervisor process ---------------------------------------------------------------


def _say(name: str, message: str) -> None:
    # stdout is the service's log file (spawn() opened it for us); the child writes there too.
    # One line each, whatever the message holds, so that log_tail() can tell ours apart.
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    one_line = message.replace("\n", "\\n")
    print(f"{stamp} {LOG_PREFIX} {name}: {one_line}", flush=True)


_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before fork: the child only calls prctl


def _child_setup() -> None:
    # Runs in the child between fork and exec (the supervisor has a single thread, so this is
    # safe): it must not inherit our blocked signals, and it must get SIGTERM if we die.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


class Supervisor:
    def __init__(
        self,
        argv: list[str],
        *,
        name: str,
        state_path: Path,
        log_path: Path,
        backoff: Backoff,
        policy: RestartPolicy,
    ) -> None:
        self.argv = argv
        self.name = name
        self.state_path = state_path
        self.log_path = log_path
        self.backoff = backoff
        self.state = SupervisorState(name=name, supervisor_pid=os.getpid(), policy=policy)
        self.failures = 0

    def run(self) -> int:
        """Run, restart, and return when told to stop (0) or when the policy gives up."""
        # Blocked signals wait as pending until sigwaitinfo() takes them: no handler races with
        # the loop, and a child that exits before we wait for it is not missed.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD, *_STOP_SIGNALS})
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        while True:
            started = time.time()
            outcome = self._run_once(started)
            if outcome is None:
                self._set(phase="stopped", child_pid=None, next_start_at=None)
                _say(self.name, "stopped")
                return 0
            returncode, record = outcome
            self.failures = self.backoff.failures_after(self.failures, record.ran_s)
            if not should_restart(self.state.policy, returncode):
                self._exited(record)
                _say(
                    self.name,
                    f"{record.reason}; not restarted (restart policy {self.state.policy})",
                )
                # The service's own status; killed by signal N is 128 + N, as a shell says.
                return returncode if returncode >= 0 else 128 - returncode
            delay = self.backoff.delay(self.failures)
            self._exited(replace(record, restart_in_s=delay), next_start_at=time.time() + delay)
            _say(
                self.name,
                f"{record.reason} after {record.ran_s:.1f} s; restart {self.state.restarts + 1} "
                f"in {delay:g} s",
            )
            if signal.sigtimedwait(_STOP_SIGNALS, delay) is not None:
                self._set(phase="stopped", next_start_at=None)
                _say(self.name, "stopped while waiting to restart")
                return 0
            self._set(restarts=self.state.restarts + 1)

    def _run_once(self, started: float) -> tuple[int, ExitRecord] | None:
        """Start the child and wait for it: its exit, or None if we were told to stop."""
        try:
            child = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, preexec_fn=_child_setup)
        except (OSError, subprocess.SubprocessError) as exc:  # e.g. the program is missing
            record = ExitRecord(time.time(), None, None, str(exc), 0.0, [], None)
            return 127, record
        self._set(
            phase="running",
            child_pid=child.pid,
            child_create_time=_create_time(child.pid),
            child_started_at=started,
            next_start_at=None,
        )
        _say(self.name, f"started pid {child.pid}: {shlex.join(self.argv)}")
        while True:
            info = signal.sigwaitinfo({signal.SIGCHLD, *_STOP_SIGNALS})
            if info.si_signo in _STOP_SIGNALS:
                child.send_signal(info.si_signo)
                # No deadline of our own: `recsys services down` kills us both if this lasts
                # longer than its stop timeout.
                child.wait()
                return None
            returncode = child.poll()  # a SIGCHLD may be stale, from the previous child
            if returncode is not None:
                now = time.time()
                tail = log_tail(self.log_path)
                return returncode, ExitRecord.of(
                    returncode, at=now, ran_s=now - started, log_tail=tail
                )

    def _exited(self, record: ExitRecord, next_start_at: float | None = None) -> None:
        exits = [*self.state.exits, record][-_KEPT_EXITS:]
        phase: Phase = "backoff" if next_start_at is not None else "exited"
        self._set(phase=phase, child_pid=None, exits=exits, next_start_at=next_start_at)

    def _set(self, **changes: object) -> None:
        for key, value in changes.items():
            setattr(self.state, key, value)
        try:
            write_state(self.state_path, self.state)
        except OSError as exc:  # a full disk must not take the service down with the supervisor
            with contextlib.suppress(OSError):
                _say(self.name, f"cannot write {self.state_path}: {exc}")


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _parse(args: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m recsys.infra.supervise", description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--state", type=Path, required=True, help="JSON state file to write")
    parser.add_argument("--log", type=Path, required=True, help="the log stdout goes to")
    parser.add_argument("--backoff-s", type=float, default=1.0)
    parser.add_argument("--backoff-max-s", type=float, default=60.0)
    parser.add_argument("--reset-after-s", type=float, default=120.0)
    parser.add_argument("--restart", choices=["always", "on-failure", "never"], default="always")
    parser.add_argument("argv", nargs="+", help="the service's command line, after --")
    ns = parser.parse_args(args)
    if not 0 < ns.backoff_s <= ns.backoff_max_s or ns.reset_after_s <= 0:
        parser.error("need 0 < --backoff-s <= --backoff-max-s and --reset-after-s > 0")
    return ns


def main(args: Sequence[str] | None = None) -> int:
    ns = _parse(args)
    supervisor = Supervisor(
        ns.argv,
        name=ns.name,
        state_path=ns.state,
        log_path=ns.log,
        backoff=Backoff(ns.backoff_s, ns.backoff_max_s, ns.reset_after_s),
        policy=ns.restart,
    )
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
