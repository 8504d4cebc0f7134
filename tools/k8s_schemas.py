"""Write the JSON schemas kubeconform validates the Helm chart against, or check they are current.

    python tools/k8s_schemas.py            # regenerate tests/deploy/schemas/
    python tools/k8s_schemas.py --check    # exit 1 if the committed schemas differ

Only the kinds the chart renders are kept, in kubeconform's layout
(``{{ .ResourceKind }}{{ .KindSuffix }}.json``, e.g. ``deployment-apps-v1.json``):

- Kubernetes kinds from the strict schemas kubernetes-validate bundles (the PyPI package, pinned
  in uv.lock). Their ``$ref``s point at ``/api/_definitions.json``, an absolute URL kubeconform
  would try to fetch; they are rewritten to ``_definitions.json`` beside them (kubeconform
  resolves that relative to the schema file), and that file keeps only the definitions the kinds
  reach.
- The prometheus-operator CRDs (ServiceMonitor, PrometheusRule) from the operator's own CRD YAML
  in the Go module cache (``go mod download``), their ``openAPIV3Schema`` made strict the way
  kubeconform's openapi2jsonschema.py does: ``additionalProperties: false`` on every object that
  lists properties and says nothing about others.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "tests" / "deploy" / "schemas"
KUBERNETES_VERSION = "1.37.0"
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
DEFINITIONS = "_definitions.json"

# The kinds charts/recsys renders: kubeconform's file name for each.
KUBERNETES_KINDS = (
    "configmap-v1",
    "cronjob-batch-v1",
    "deployment-apps-v1",
    "horizontalpodautoscaler-autoscaling-v2",
    "job-batch-v1",
    "networkpolicy-networking-v1",
    "persistentvolumeclaim-v1",
    "poddisruptionbudget-policy-v1",
    "secret-v1",
    "service-v1",
    "serviceaccount-v1",
    "statefulset-apps-v1",
)
# CRD file in the operator's repository -> kubeconform's file name.
CRDS = {
    "monitoring.coreos.com_servicemonitors.yaml": "servicemonitor-monitoring-v1",
    "monitoring.coreos.com_prometheusrules.yaml": "prometheusrule-monitoring-v1",
}

# Kind files say "/api/_definitions.json#/$defs/X"; the definitions file itself "#/$defs/X".
_REF = re.compile(r"^(?:/api/_definitions\.json)?#/\$defs/(.+)$")


def kubernetes_schema_dir() -> Path:
    """The strict, per-kind schemas kubernetes-validate ships for KUBERNETES_VERSION."""
    # Found, not imported: the package ships no type information.
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or spec.origin is None:
        sys.exit("kubernetes-validate is not installed: run `make venv`")
    base = Path(spec.origin).parent / "kubernetes-json-schema"
    path = base / f"v{KUBERNETES_VERSION}-local-strict"
    if not path.is_dir():
        sys.exit(f"{path} is missing: is kubernetes-validate {KUBERNETES_VERSION} installed?")
    return path


def _rewrite_refs(node: Any, reached: set[str], prefix: str = DEFINITIONS) -> Any:
    """Point every ``$ref`` at ``prefix`` (the definitions file beside a kind's schema, or ""
    inside that file); collect the definitions named."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                match = _REF.match(value)
                if match is None:
                    raise ValueError(f"unexpected $ref {value!r}")
                reached.add(match.group(1))
                out[key] = f"{prefix}#/$defs/{match.group(1)}"
            else:
                out[key] = _rewrite_refs(value, reached, prefix)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, reached, prefix) for item in node]
    return node


def kubernetes_schemas() -> dict[str, Any]:
    """The kinds' schemas and the definitions they reach, transitively, by file name."""
    source = kubernetes_schema_dir()
    out: dict[str, Any] = {}
    pending: set[str] = set()
    for kind in KUBERNETES_KINDS:
        schema = json.loads((source / f"{kind}.json").read_text())
        schema.pop("$id", None)  # an absolute URL would make kubeconform resolve refs against it
        out[f"{kind}.json"] = _rewrite_refs(schema, pending)
    every = json.loads((source / DEFINITIONS).read_text())["$defs"]
    kept: dict[str, Any] = {}
    while pending:
        name = pending.pop()
        if name in kept:
            continue
        found: set[str] = set()
        kept[name] = _rewrite_refs(every[name], found, prefix="")
        pending |= found - kept.keys()
    out[DEFINITIONS] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": dict(sorted(kept.items())),
    }
    return out


def strict(node: Any) -> Any:
    """``additionalProperties: false`` wherever an object lists properties and allows others
    by omission (kubeconform's openapi2jsonschema.py in strict mode)."""
    if isinstance(node, dict):
        out = {key: strict(value) for key, value in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [strict(item) for item in node]
    return node


def operator_dir() -> Path:
    """The prometheus-operator module in the Go module cache (downloaded if missing)."""
    module = f"{PROMETHEUS_OPERATOR}@{PROMETHEUS_OPERATOR_VERSION}"
    with tempfile.TemporaryDirectory() as empty:  # outside any Go module: no go.mod touched
        try:
            done = subprocess.run(
                ["go", "mod", "download", "-json", module],
                cwd=empty,
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
        except FileNotFoundError:
            sys.exit("`go` is not on PATH: it fetches the prometheus-operator CRDs")
    if done.returncode != 0:
        sys.exit(f"go mod download {module} failed:\n{done.stdout}{done.stderr}")
    return Path(json.loads(done.stdout)["Dir"])


def crd_schemas() -> dict[str, Any]:
    """The monitoring CRDs' strict schemas by file name."""
    crd_dir = operator_dir() / "example" / "prometheus-operator-crd"
    out: dict[str, Any] = {}
    for crd_file, name in CRDS.items():
        crd = yaml.safe_load((crd_dir / crd_file).read_text())
        versions = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        if len(versions) != 1:
            raise ValueError(f"{crd_file}: expected one v1 version")
        schema = strict(versions[0]["schema"]["openAPIV3Schema"])
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        out[f"{name}.json"] = schema
    return out


def render() -> dict[str, str]:
    """Every schema file's name and text, as committed."""
    schemas = {**kubernetes_schemas(), **crd_schemas()}
    return {
        name: json.dumps(schema, indent=1, sort_keys=True) + "\n"
        for name, schema in sorted(schemas.items())
    }


def write(out: Path = OUT_DIR) -> list[str]:
    """Replace the schemas in ``out``; return the file names written."""
    files = render()
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        (out / name).write_text(text)
    return sorted(files)


def differences(out: Path = OUT_DIR) -> list[str]:
    """What differs between ``out`` and a fresh render: one line per file."""
    files = render()
    problems = []
    present = {p.name for p in out.glob("*.json")} if out.is_dir() else set()
    for name in sorted(present - files.keys()):
        problems.append(f"{name}: not a schema the chart needs (stale)")
    for name, text in files.items():
        path = out / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.read_text() != text:
            problems.append(f"{name}: differs")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="Fail if the committed schemas are not current."
    )
    args = parser.parse_args()
    if args.check:
        problems = differences()
        if problems:
            print("\n".join(problems), file=sys.stderr)
            sys.exit(f"{OUT_DIR} is stale: run `python tools/k8s_schemas.py`")
        print(f"{OUT_DIR.relative_to(ROOT)} is current")
        return
    for name in write():
        print(f"wrote {(OUT_DIR / name).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
