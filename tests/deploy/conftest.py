"""The Go tools the deployment checks run: helm and kubeconform, built once per machine by
`make tools`, found through RECSYS_HELM and RECSYS_KUBECONFORM (the Makefile exports both)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from recsys.infra.apt import apt_install

TOOLS_DIR = Path.home() / ".cache" / "recsys" / "tools"
DEFAULT_HELM = TOOLS_DIR / "helm-v3.22.0" / "helm"
DEFAULT_KUBECONFORM = TOOLS_DIR / "kubeconform-v0.8.0" / "kubeconform"


def _tool(env: str, default: Path) -> Path:
    path = Path(os.environ.get(env) or default)
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{path} is missing ({env}): run `make tools`", pytrace=False)
    return path


@pytest.fixture(scope="session")
def helm() -> Path:
    return _tool("RECSYS_HELM", DEFAULT_HELM)


@pytest.fixture(scope="session")
def kubeconform() -> Path:
    return _tool("RECSYS_KUBECONFORM", DEFAULT_KUBECONFORM)


@pytest.fixture(scope="session")
def promtool() -> Path:
    """Debian's prometheus package, installed on first use as tests/unit/test_prometheus_rules
    does."""
    if shutil.which("promtool") is None:
        apt_install("prometheus")
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: install Debian's prometheus package", pytrace=False)
    return Path(found)
