"""Find a Java runtime that Kafka 4 and Cassandra 5.0 both accept (17; Cassandra breaks on 18+)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

from recsys.infra.server import InfraError

__all__ = ["java_binary"]

SUPPORTED = 17


@cache
def java_binary() -> Path:
    candidates: list[Path] = []
    if home := os.environ.get("JAVA_HOME"):
        candidates.append(Path(home) / "bin" / "java")
    if on_path := shutil.which("java"):
        candidates.append(Path(on_path))
    candidates += sorted(Path("/usr/lib/jvm").glob(f"*{SUPPORTED}*/bin/java"))
    seen: list[str] = []
    for java in candidates:
        if not java.is_file():
            continue
        version = _major_version(java)
        if version == SUPPORTED:
            return java
        seen.append(f"{java} (Java {version})")
    raise InfraError(
        f"Java {SUPPORTED} is required (Cassandra 5.0 supports 11 and 17 only); found: "
        f"{', '.join(seen) or 'no java'}. "
        f"Install openjdk-{SUPPORTED}-jdk-headless or set JAVA_HOME."
    )


def _major_version(java: Path) -> int | None:
    out = subprocess.run([str(java), "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else None
