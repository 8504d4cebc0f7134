"""The model registry: immutable versioned directories and an atomic ``current`` pointer per name.

    registry = ModelRegistry(settings.models.root)
    with registry.new_version("ranker") as staging:
        (staging.path / "ranker.onnx").write_bytes(onnx_bytes)
        staging.manifest = Manifest(features=[...], metrics={...})
    registry.promote("ranker", staging.version)

Layout (docs/models.md is the contract)::

    <root>/<name>/versions/v0001/manifest.json   + the version's files, never changed again
    <root>/<name>/current.json                   {"version": "v0002", "previous": ["v0001"], ...}
    <root>/<name>/.staging/...                   versions being written (never read)

A version is written in a staging directory and renamed into ``versions/`` whole; the pointer is
replaced with ``os.replace``. A reader therefore sees a version completely or not at all, and the
pointer before or after a promotion, never in between. Nothing here deletes a version, so a reader
holding an older current one can keep loading its files.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from recsys.models.manifest import MANIFEST_FILE, Manifest, ModelFile

if TYPE_CHECKING:
    from recsys.config import ModelsSettings

__all__ = ["ModelRegistry", "ModelVersion", "RegistryError", "Staging", "code_version"]

POINTER_FILE = "current.json"
VERSIONS_DIR = "versions"
STAGING_DIR = ".staging"
LOCK_FILE = ".lock"

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_VERSION = re.compile(r"^v(\d{4,})$")


class RegistryError(Exception):
    """A registry operation failed; the message is one line that says what and where."""


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One published version: its directory and its manifest."""

    name: str
    version: str
    path: Path
    manifest: Manifest

    def file(self, name: str) -> Path:
        """The path of one of the version's files; RegistryError when it has none by that name."""
        if name not in self.manifest.files:
            known = ", ".join(sorted(self.manifest.files)) or "none"
            raise RegistryError(f"{self.name} {self.version} has no file {name!r} (files: {known})")
        return self.path / name

    def verify(self) -> None:
        """Check every file against the manifest's size and sha256 (RegistryError if not)."""
        _check_files(self, hashes=True)


class Staging:
    """A version being written: put files under ``path`` and set ``manifest`` before the
    ``with`` block ends. ``version`` is the id the registry gave it, once published."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self.manifest: Manifest | None = None
        self.version: str | None = None

    def __truediv__(self, other: str) -> Path:
        """``staging / "model.onnx"``: a path inside the staging directory."""
        return self.path / other


class _Publication:
    """The context manager `ModelRegistry.new_version` returns."""

    def __init__(self, registry: ModelRegistry, name: str) -> None:
        self._registry = registry
        self._name = name
        self._staging: Staging | None = None

    def __enter__(self) -> Staging:
        model_dir = self._registry.root / self._name
        parent = model_dir / STAGING_DIR
        try:
            parent.mkdir(parents=True, exist_ok=True)
            path = Path(tempfile.mkdtemp(prefix="publish-", dir=parent))
        except OSError as exc:
            raise RegistryError(f"cannot stage {self._name} in {parent}: {exc}") from exc
        self._staging = Staging(self._name, path)
        return self._staging

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        staging = self._staging
        assert staging is not None
        try:
            if exc_type is None:
                staging.version = self._registry._commit(staging)
        finally:
            shutil.rmtree(staging.path, ignore_errors=True)  # gone once renamed; else discarded

    @property
    def version(self) -> str | None:
        return self._staging.version if self._staging else None


class ModelRegistry:
    """The registry under one root directory (``settings.models.root``)."""

    def __init__(self, root: Path, *, history: int = 20) -> None:
        self.root = Path(root)
        self.history = history

    @classmethod
    def from_settings(cls, settings: ModelsSettings) -> ModelRegistry:
        """The registry at ``RECSYS_MODELS__ROOT`` with its pointer history."""
        return cls(settings.root, history=settings.pointer_history)

    # --- publishing ---------------------------------------------------------------------------

    def new_version(self, name: str) -> _Publication:
        """A staging directory that becomes the next version of ``name`` when the block ends
        without an exception (it is removed otherwise). It does not become current: promote it."""
        _check_name(name)
        return _Publication(self, name)

    def _commit(self, staging: Staging) -> str:
        name, path = staging.name, staging.path
        if staging.manifest is None:
            raise RegistryError(f"publishing {name}: no manifest was set on the staging version")
        if staging.manifest.name not in ("", name):
            raise RegistryError(
                f"publishing {name}: the manifest names another model, {staging.manifest.name!r}"
            )
        files = _hash_staged_files(name, path)
        manifest = staging.manifest.model_copy(
            update={
                "name": name,
                "files": files,
                "created_at": staging.manifest.created_at or datetime.now(UTC),
                "code_version": staging.manifest.code_version or code_version(),
            }
        )
        versions_dir = self.root / name / VERSIONS_DIR
        versions_dir.mkdir(parents=True, exist_ok=True)
        with self._locked(name):
            version = _next_version(versions_dir)
            manifest = manifest.model_copy(update={"version": version})
            _write_durably(path / MANIFEST_FILE, _dump(manifest))
            _fsync_dir(path)
            # rename(2) of a directory is atomic, and fails rather than merge into an existing one
            os.rename(path, versions_dir / version)
            _fsync_dir(versions_dir)
        return version

    def last_published(self, name: str) -> str | None:
        """The newest version id of ``name``, current or not."""
        ids = self.version_ids(name)
        return ids[-1] if ids else None

    # --- the pointer ----------------------------------------------------------------------------

    def promote(self, name: str, version: str) -> ModelVersion:
        """Point ``name``'s current at ``version`` (verified first); a no-op if it already is."""
        target = self.get(name, version, verify=True)
        with self._locked(name):
            pointer = self._read_pointer(name)
            if pointer is not None and pointer["version"] == version:
                return target
            previous: list[str] = [] if pointer is None else pointer["previous"]
            if pointer is not None:
                previous = [*previous, pointer["version"]][-self.history :]
            self._write_pointer(name, version, previous)
        return target

    def rollback(self, name: str) -> ModelVersion:
        """Point ``name``'s current back at the version that was current before it."""
        _check_name(name)
        self._model_dir(name)
        with self._locked(name):
            pointer = self._read_pointer(name)
            if pointer is None or not pointer["previous"]:
                raise RegistryError(f"{name} has no earlier current version to roll back to")
            *previous, version = pointer["previous"]
            target = self.get(name, version, verify=True)
            self._write_pointer(name, version, previous)
        return target

    def current_token(self, name: str) -> str | None:
        """What changes exactly when ``name``'s current version changes (one small file read):
        poll it, and load `current` only when it differs from the token of what is loaded.
        None when the model has no current version (or was never published)."""
        _check_name(name)
        pointer = self._read_pointer(name)
        return None if pointer is None else str(pointer["version"])

    def current(self, name: str, *, verify: bool = True) -> ModelVersion | None:
        """The current version of ``name`` (None before its first promotion), files checked
        against the manifest (sha256 too unless ``verify`` is False)."""
        _check_name(name)
        self._model_dir(name)
        token = self.current_token(name)
        return None if token is None else self.get(name, token, verify=verify)

    # --- reading --------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every model that has a version directory, sorted."""
        if not self.root.is_dir():
            return []
        found = (p for p in self.root.iterdir() if _NAME.match(p.name))
        return sorted(p.name for p in found if (p / VERSIONS_DIR).is_dir())

    def version_ids(self, name: str) -> list[str]:
        """The published version ids of ``name``, oldest first (no manifest read)."""
        _check_name(name)
        versions_dir = self._model_dir(name) / VERSIONS_DIR
        return sorted(
            (p.name for p in versions_dir.iterdir() if _VERSION.match(p.name)), key=_version_number
        )

    def versions(self, name: str) -> list[ModelVersion]:
        """Every published version of ``name``, oldest first (manifests read, files not hashed)."""
        return [self.get(name, v, verify=False) for v in self.version_ids(name)]

    def get(self, name: str, version: str, *, verify: bool = True) -> ModelVersion:
        """One version; its files must exist with the manifest's sizes (and sha256 if verify)."""
        _check_name(name)
        model_dir = self._model_dir(name)
        path = model_dir / VERSIONS_DIR / version
        if not _VERSION.match(version) or not path.is_dir():
            known = self.version_ids(name)
            listed = ", ".join(known[-5:]) if known else "none"
            raise RegistryError(f"{name} has no version {version!r} (latest: {listed})")
        found = ModelVersion(name, version, path, _read_manifest(path / MANIFEST_FILE))
        if found.manifest.name != name or found.manifest.version != version:
            raise RegistryError(
                f"corrupt manifest {path / MANIFEST_FILE}: it describes "
                f"{found.manifest.name!r} {found.manifest.version!r}"
            )
        _check_files(found, hashes=verify)
        return found

    # --- internals ------------------------------------------------------------------------------

    def _model_dir(self, name: str) -> Path:
        model_dir = self.root / name
        if not (model_dir / VERSIONS_DIR).is_dir():
            known = ", ".join(self.names()) or "none"
            raise RegistryError(f"unknown model {name!r} in {self.root} (models: {known})")
        return model_dir

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        """Serialises the read-modify-write of one model's pointer and version ids across
        processes (readers take no lock)."""
        lock_path = self.root / name / LOCK_FILE
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_pointer(self, name: str) -> dict[str, Any] | None:
        path = self.root / name / POINTER_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RegistryError(f"cannot read the current pointer {path}: {exc}") from exc
        try:
            pointer = json.loads(raw)
            version, previous = pointer["version"], pointer.get("previous", [])
            if not isinstance(version, str) or not _VERSION.match(version):
                raise ValueError(f"bad version {version!r}")
            if not isinstance(previous, list) or not all(
                isinstance(v, str) and _VERSION.match(v) for v in previous
            ):
                raise ValueError("bad previous versions")
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"corrupt current pointer {path}: {_one_line(exc)}") from None
        return {"version": version, "previous": previous}

    def _write_pointer(self, name: str, version: str, previous: list[str]) -> None:
        path = self.root / name / POINTER_FILE
        body = {
            "version": version,
            "previous": previous,
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        tmp = path.with_name(f".{POINTER_FILE}.{os.getpid()}.tmp")
        _write_durably(tmp, json.dumps(body, indent=2).encode() + b"\n")
        os.replace(tmp, path)  # atomic: readers see the old pointer or the new one
        _fsync_dir(path.parent)


def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    try:
        base = package_version("recsys")
    except PackageNotFoundError:
        base = "0+unknown"
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return base
    return f"{base}+g{sha}" if sha else base


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise RegistryError(
            f"invalid model name {name!r}: lowercase letters, digits and _, starting with a letter"
        )


def _version_number(version: str) -> int:
    match = _VERSION.match(version)
    assert match is not None
    return int(match.group(1))


def _next_version(versions_dir: Path) -> str:
    numbers = [_version_number(p.name) for p in versions_dir.iterdir() if _VERSION.match(p.name)]
    return f"v{max(numbers, default=0) + 1:04d}"


def _hash_staged_files(name: str, staging: Path) -> dict[str, ModelFile]:
    files: dict[str, ModelFile] = {}
    for path in sorted(staging.rglob("*")):
        rel = path.relative_to(staging).as_posix()
        if path.is_symlink():
            raise RegistryError(f"publishing {name}: {rel} is a symbolic link; copy the file in")
        if path.is_dir():
            continue
        if rel == MANIFEST_FILE:
            raise RegistryError(f"publishing {name}: {MANIFEST_FILE} is the registry's to write")
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
            os.fsync(f.fileno())  # the bytes are on disk before the version becomes visible
        files[rel] = ModelFile(sha256=digest, size=path.stat().st_size)
    if not files:
        raise RegistryError(f"publishing {name}: the staging directory {staging} holds no file")
    return files


def _read_manifest(path: Path) -> Manifest:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RegistryError(f"corrupt version {path.parent}: no {MANIFEST_FILE}") from None
    except OSError as exc:
        raise RegistryError(f"cannot read {path}: {exc}") from exc
    try:
        return Manifest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        detail = _one_line(first["msg"])
        raise RegistryError(f"corrupt manifest {path}: {where}: {detail}") from None


def _check_files(found: ModelVersion, *, hashes: bool) -> None:
    for rel, expected in found.manifest.files.items():
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts or rel == MANIFEST_FILE:
            raise RegistryError(f"corrupt manifest {found.path / MANIFEST_FILE}: file {rel!r}")
        path = found.path / rel
        where = f"{found.name} {found.version}: {rel}"
        try:
            size = path.stat().st_size
        except OSError:
            raise RegistryError(f"{where} is missing ({path})") from None
        if size != expected.size:
            raise RegistryError(f"{where} has {size} bytes, the manifest says {expected.size}")
        if hashes:
            with open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
            if digest != expected.sha256:
                raise RegistryError(f"{where} was altered: its sha256 differs from the manifest's")


def _dump(manifest: Manifest) -> bytes:
    return manifest.model_dump_json(indent=2).encode() + b"\n"


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
