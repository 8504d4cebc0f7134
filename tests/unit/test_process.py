from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from recsys.infra.process import read_record, spawn, terminate


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
