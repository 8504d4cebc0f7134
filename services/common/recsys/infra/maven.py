"""Resolve a Java server's runtime classpath from Maven Central, once per machine.

The resolved classpath is cached under ``<cache_dir>/classpath/`` keyed by the pom's hash and
the jars live in Maven's own repository (``~/.m2``), so every clone on the machine shares them.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

__all__ = ["MavenError", "resolve_classpath"]


class MavenError(RuntimeError):
    pass


def resolve_classpath(pom: Path, cache_dir: Path, *, name: str) -> tuple[list[Path], bool]:
    """The jars ``pom`` depends on at runtime, and whether they had to be resolved now."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    cached = cache_dir / "classpath" / f"{name}-{digest}.txt"
    if cached.is_file():
        jars = _split(cached.read_text())
        if jars and all(j.is_file() for j in jars):
            return jars, False
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MavenError("Maven (mvn) is not on PATH; install it (apt-get install maven)")
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:build-classpath",
        "-Dmdep.includeScope=runtime",
        f"-Dmdep.outputFile={tmp}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not tmp.is_file():
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise MavenError(f"resolving the {name} classpath failed ({' '.join(cmd)}):\n{tail}")
    tmp.replace(cached)
    jars = _split(cached.read_text())
    missing = [j for j in jars if not j.is_file()]
    if not jars or missing:
        raise MavenError(f"{name} classpath is incomplete; missing {missing[:3]}")
    return jars, True


def _split(classpath: str) -> list[Path]:
    return [Path(p) for p in classpath.strip().split(":") if p]
