"""Readers of the current version never see a half-written version or a missing file while
another thread or process publishes, promotes and rolls back."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from recsys.models import Manifest, ModelRegistry, ModelVersion, RegistryError

NAME = "two_tower"
SWITCHES_WANTED = 30
GIVE_UP_S = 120.0  # only bounds a broken run; the loops stop as soon as enough was seen


def publish(registry: ModelRegistry, size: int) -> str:
    with registry.new_version(NAME) as staging:
        # Sizes vary so a torn read would show as a size or hash mismatch.
        (staging / "user_tower.onnx").write_bytes(os.urandom(size))
        (staging / "title_ids.json").write_text(json.dumps([f"t{i}" for i in range(size // 100)]))
        staging.manifest = Manifest(metrics={"size": size})
    assert staging.version is not None
    return staging.version


def read_current(registry: ModelRegistry) -> str:
    """What a serving process does: find the current version, then load each of its files."""
    found: ModelVersion | None = registry.current(NAME)
    assert found is not None
    for rel, expected in found.manifest.files.items():
        data = found.file(rel).read_bytes()
        if len(data) != expected.size or hashlib.sha256(data).hexdigest() != expected.sha256:
            raise AssertionError(f"{found.version}/{rel} read torn")
    return found.version


def churn(registry: ModelRegistry, enough: Callable[[], bool]) -> int:
    """Publish, promote and roll back until the reader saw enough switches; returns the ops."""
    ops, deadline = 0, time.monotonic() + GIVE_UP_S
    while not enough() and time.monotonic() < deadline:
        version = publish(registry, size=50_000 + (ops * 7919) % 200_000)
        registry.promote(NAME, version)
        registry.rollback(NAME)
        registry.promote(NAME, version)
        ops += 3
    return ops


def test_a_reader_thread_never_sees_a_torn_version(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    registry.promote(NAME, publish(registry, 1000))
    seen: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        reader_registry = ModelRegistry(tmp_path / "models")  # its own instance, as a service has
        while not stop.is_set():
            try:
                version = read_current(reader_registry)
            except (RegistryError, AssertionError, OSError) as exc:
                errors.append(exc)
                return
            if not seen or seen[-1] != version:
                seen.append(version)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        churn(registry, lambda: len(seen) > SWITCHES_WANTED or bool(errors))
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert len(seen) > SWITCHES_WANTED


_READER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from test_registry_atomic import read_current
from recsys.models import ModelRegistry
registry, stop = ModelRegistry(Path(sys.argv[1])), Path(sys.argv[2])
last = None
while not stop.exists():
    try:
        version = read_current(registry)
    except Exception as exc:
        print("error", " ".join(repr(exc).split()), flush=True)
        raise SystemExit(1)
    if version != last:
        print("switch", version, flush=True)
        last = version
print("done", flush=True)
"""


def test_a_reader_process_never_sees_a_torn_version(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    registry.promote(NAME, publish(registry, 1000))
    stop = tmp_path / "stop"
    proc = subprocess.Popen(
        [sys.executable, "-c", _READER, str(registry.root), str(stop), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    pump = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))  # type: ignore[union-attr]
    pump.start()
    try:
        churn(registry, lambda: len(lines) > SWITCHES_WANTED or proc.poll() is not None)
    finally:
        stop.touch()
        proc.wait(timeout=60)
        pump.join()
    errors = [line for line in lines if line.startswith("error")]
    assert errors == []
    assert proc.returncode == 0
    assert lines[-1].strip() == "done"
    assert sum(line.startswith("switch") for line in lines) > SWITCHES_WANTED
