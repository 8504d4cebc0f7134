"""The Go tools the deployment checks run (tests/deploy/helm.py says where they come from)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.helm import DEFAULT_KUBECONFORM, helm_path, tool


@pytest.fixture(scope="session")
def helm() -> Path:
    return helm_path()


@pytest.fixture(scope="session")
def kubeconform() -> Path:
    return tool("RECSYS_KUBECONFORM", DEFAULT_KUBECONFORM)
