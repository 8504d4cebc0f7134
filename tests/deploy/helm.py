"""Running the chart through helm for the deployment checks: where the Go tools are (built once
per machine by `make tools`, found through RECSYS_HELM and RECSYS_KUBECONFORM, which the
Makefile exports) and `helm template` / `helm lint` on charts/recsys or a broken copy of it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tools import k8s_schemas

from recsys.config import repo_root

CHART = repo_root() / "charts" / "recsys"
TOOLS_DIR = Path.home() / ".cache" / "recsys" / "tools"
DEFAULT_HELM = TOOLS_DIR / "helm-v3.22.0" / "helm"
DEFAULT_KUBECONFORM = TOOLS_DIR / "kubeconform-v0.8.0" / "kubeconform"
# A helm built with `go install` assumes Kubernetes 1.20 unless told (the chart needs >= 1.27):
# the version whose schemas kubeconform checks against.
KUBE_VERSION = k8s_schemas.KUBERNETES_VERSION

Manifest = dict[str, Any]


def tool(env: str, default: Path) -> Path:
    path = Path(os.environ.get(env) or default)
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{path} is missing ({env}): run `make tools`", pytrace=False)
    return path


def helm_path() -> Path:
    return tool("RECSYS_HELM", DEFAULT_HELM)


def run(argv: list[str | Path], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        cwd=repo_root(),
        timeout=120,
    )


def output(done: subprocess.CompletedProcess[str]) -> str:
    # helm warns on stderr about files/experiments/experiments.yaml, a link to the service's file.
    return done.stdout + "\n".join(
        line for line in done.stderr.splitlines() if "symbolic link" not in line
    )


def template(
    helm: Path,
    *values: Path,
    chart: Path = CHART,
    sets: Iterable[str] = (),
    set_strings: Iterable[str] = (),
    namespace: str | None = None,
) -> subprocess.CompletedProcess[str]:
    argv: list[str | Path] = [helm, "template", "recsys", chart, "--kube-version", KUBE_VERSION]
    if namespace is not None:
        argv += ["--namespace", namespace]
    for path in values:
        argv += ["-f", path]
    for item in sets:
        argv += ["--set", item]
    for item in set_strings:  # values helm must not read as numbers (a git commit tag)
        argv += ["--set-string", item]
    return run(argv)


def render(
    helm: Path,
    *values: Path,
    chart: Path = CHART,
    sets: Iterable[str] = (),
    set_strings: Iterable[str] = (),
    namespace: str | None = None,
) -> str:
    done = template(
        helm, *values, chart=chart, sets=sets, set_strings=set_strings, namespace=namespace
    )
    assert done.returncode == 0, output(done)
    return done.stdout


def manifests(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]


def lint(helm: Path, *values: Path, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    argv: list[str | Path] = [helm, "lint", "--strict", chart, "--kube-version", KUBE_VERSION]
    for path in values:
        argv += ["-f", path]
    return run(argv)
