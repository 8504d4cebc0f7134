"""Static checks of the Helm chart (charts/recsys), standing in for a cluster this machine lacks.

- `helm lint --strict` on the default values and on ci/production-values.yaml;
- both renders validated by kubeconform in strict mode against the schemas in
  tests/deploy/schemas (tools/k8s_schemas.py writes them; a kind without a schema is an error);
- every RECSYS_* name the chart sets is a field of recsys.config.Settings;
- the PrometheusRule holds exactly the groups of files/prometheus/*.rules.yml and passes
  `promtool check rules`;
- one dashboard ConfigMap per files/dashboards/*.json, zero files included;
- the chart refuses the local default API key and an empty key list, and a misspelt value;
- each check is shown to fail on a broken input.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from tools import k8s_schemas

from recsys.config import IngestSettings, Settings
from tests.deploy.helm import CHART, Manifest, lint, manifests, output, render, run, template
from tests.promql_names import rule_groups

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = CHART / "ci" / "production-values.yaml"
SCHEMAS = ROOT / "tests" / "deploy" / "schemas"
# The cluster version the chart is rendered for: the Kubernetes schemas' version.
PLATFORM_IMAGES = {
    "recsys-api",
    "recsys-ingest",
    "recsys-features",
    "recsys-bronze",
    "recsys-featurestore",
    "recsys-candidates",
    "recsys-ranker",
    "recsys-experiments",
    "recsys-pipelines",
}
WORKLOADS = {"Deployment", "StatefulSet", "Job", "CronJob"}


def kubeconform_run(kubeconform: Path, text: str) -> subprocess.CompletedProcess[str]:
    """Strict, offline, against the schemas in the repository only (no default location, so a
    kind without a schema there is an error, never a skip)."""
    location = f"{SCHEMAS}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json"
    return run([kubeconform, "-strict", "-summary", "-schema-location", location, "-"], text)


@pytest.fixture(scope="module")
def default_render(helm: Path) -> str:
    return render(helm)


@pytest.fixture(scope="module")
def production_render(helm: Path) -> str:
    return render(helm, PRODUCTION)


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    """A copy of the chart to break (the experiments file link copied as a file)."""
    copy = tmp_path / "recsys"
    shutil.copytree(CHART, copy)
    return copy


# --- the settings check ------------------------------------------------------------------------


def unknown_settings(names: Iterable[str]) -> list[str]:
    """The RECSYS_* names that are not a field of recsys.config.Settings, as pydantic-settings
    reads them (prefix RECSYS_, nested sections split by "__", case-insensitive): RECSYS_API__PORT
    is settings.api.port. A whole section (RECSYS_API) does not count as a setting."""
    unknown = []
    for name in names:
        if not name.startswith("RECSYS_"):
            unknown.append(name)
            continue
        model: type[BaseModel] = Settings
        parts = name.removeprefix("RECSYS_").lower().split("__")
        for i, part in enumerate(parts):
            field = model.model_fields.get(part)
            if field is None:
                unknown.append(name)
                break
            section = field.annotation
            if i == len(parts) - 1:
                if isinstance(section, type) and issubclass(section, BaseModel):
                    unknown.append(name)
                break
            if not (isinstance(section, type) and issubclass(section, BaseModel)):
                unknown.append(name)
                break
            model = section
    return unknown


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def setting_names(docs: list[Manifest]) -> set[str]:
    """Every RECSYS_* name the chart sets: container env, the ConfigMaps' and Secrets' keys."""
    names: set[str] = set()
    for doc in docs:
        if doc["kind"] in {"ConfigMap", "Secret"}:
            names |= {k for k in doc.get("data", {}) if k.startswith("RECSYS_")}
            names |= {k for k in doc.get("stringData", {}) if k.startswith("RECSYS_")}
        for node in _walk(doc):
            if "image" in node and isinstance(node.get("env"), list):
                names |= {e["name"] for e in node["env"] if e["name"].startswith("RECSYS_")}
    return names


def test_unknown_settings_finds_a_made_up_name() -> None:
    assert unknown_settings(["RECSYS_API__PORT", "RECSYS_ENVIRONMENT"]) == []
    assert unknown_settings(["recsys_api__port".upper(), "RECSYS_KAFKA__BOOTSTRAP_SERVERS"]) == []
    made_up = [
        "RECSYS_API__NO_SUCH_SETTING",  # an unknown field of a section
        "RECSYS_NO_SUCH_SECTION__PORT",  # an unknown section
        "RECSYS_API",  # a section, not a setting
        "RECSYS_ENVIRONMENT__X",  # below a plain field
        "KAFKA_PORT",  # not a recsys setting at all
    ]
    assert unknown_settings(made_up) == made_up


@pytest.mark.parametrize("which", ["default", "production"])
def test_every_setting_the_chart_passes_exists(
    which: str, default_render: str, production_render: str
) -> None:
    docs = manifests(default_render if which == "default" else production_render)
    names = setting_names(docs)
    # Not a vacuous pass: the settings ConfigMap, the per-pod listen addresses, the API keys.
    assert {
        "RECSYS_KAFKA__BOOTSTRAP_SERVERS",
        "RECSYS_API__HOST",
        "RECSYS_INGEST__API_KEYS",
    } <= names
    assert len(names) > 30
    assert unknown_settings(sorted(names)) == []
    # pydantic-settings ignores other names silently: the settings ConfigMap holds only RECSYS_*.
    settings_map = next(d for d in docs if d["metadata"]["name"] == "recsys-settings")
    assert all(key.startswith("RECSYS_") for key in settings_map["data"])


def test_the_settings_check_reports_an_unknown_setting(helm: Path) -> None:
    docs = manifests(render(helm, sets=["api.env.RECSYS_API__NO_SUCH_SETTING=1"]))
    assert unknown_settings(sorted(setting_names(docs))) == ["RECSYS_API__NO_SUCH_SETTING"]


# --- helm lint and kubeconform -----------------------------------------------------------------


@pytest.mark.parametrize("values", [[], [PRODUCTION]], ids=["default", "production"])
def test_helm_lint_strict_passes(helm: Path, values: list[Path]) -> None:
    done = lint(helm, *values)
    assert done.returncode == 0, output(done)
    assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("which", ["default", "production"])
def test_kubeconform_strict_passes(
    kubeconform: Path, which: str, default_render: str, production_render: str
) -> None:
    text = default_render if which == "default" else production_render
    done = kubeconform_run(kubeconform, text)
    assert done.returncode == 0, output(done)
    count = len(manifests(text))
    assert f"Summary: {count} resources found" in done.stdout, done.stdout
    assert f"Valid: {count}, Invalid: 0, Errors: 0, Skipped: 0" in done.stdout, done.stdout


BROKEN_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: broken
spec:
  replicas: {replicas}
  {extra}
  selector:
    matchLabels: {{app: broken}}
  template:
    metadata:
      labels: {{app: broken}}
    spec:
      containers:
        - name: broken
          image: broken:1
"""


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (BROKEN_DEPLOYMENT.format(replicas='"two"', extra=""), "/spec/replicas"),
        (BROKEN_DEPLOYMENT.format(replicas="2", extra="replicaz: 2"), "replicaz"),
        (
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: no-schema}\n",
            "could not find schema for Ingress",
        ),
    ],
    ids=["wrong-type", "unknown-field", "kind-without-schema"],
)
def test_kubeconform_fails_on_an_invalid_manifest(
    helm: Path, kubeconform: Path, chart_copy: Path, manifest: str, expected: str
) -> None:
    (chart_copy / "templates" / "broken.yaml").write_text(manifest)
    done = kubeconform_run(kubeconform, render(helm, chart=chart_copy))
    assert done.returncode != 0
    assert expected in done.stdout, done.stdout


def test_a_misspelt_value_fails(helm: Path, tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("api:\n  replicaz: 2\n")
    for done in (lint(helm, typo), template(helm, typo)):
        assert done.returncode != 0
        assert "additional properties 'replicaz' not allowed" in output(done)


def test_the_committed_schemas_are_current(tmp_path: Path) -> None:
    assert k8s_schemas.differences() == []
    # And the check sees a stale or stray file.
    k8s_schemas.write(tmp_path)
    (tmp_path / "deployment-apps-v1.json").write_text("{}\n")
    (tmp_path / "ingress-networking-v1.json").write_text("{}\n")
    assert k8s_schemas.differences(tmp_path) == [
        "ingress-networking-v1.json: not a schema the chart needs (stale)",
        "deployment-apps-v1.json: differs",
    ]


def test_every_rendered_kind_has_a_committed_schema(
    default_render: str, production_render: str
) -> None:
    kinds = {
        (d["apiVersion"], d["kind"])
        for d in manifests(default_render) + manifests(production_render)
    }
    files = set()
    for api_version, kind in kinds:
        group, _, version = api_version.rpartition("/")
        suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
        files.add(f"{kind.lower()}{suffix}")
    # Everything the chart renders, and nothing else (the committed set stays small).
    assert files == set(k8s_schemas.KUBERNETES_KINDS) | set(k8s_schemas.CRDS.values())


# --- what the chart renders --------------------------------------------------------------------


def _images(docs: list[Manifest]) -> set[str]:
    return {
        node["image"] for doc in docs for node in _walk(doc) if isinstance(node.get("image"), str)
    }


def test_the_images_are_the_ones_the_images_build(helm: Path, default_render: str) -> None:
    names = {i.rsplit(":", 1)[0] for i in _images(manifests(default_render))}
    assert names >= PLATFORM_IMAGES
    assert names - PLATFORM_IMAGES == {"apache/kafka", "cassandra", "redis"}
    with_locust = manifests(render(helm, sets=["locust.enabled=true"]))
    assert "recsys-locust:0.1.0" in _images(with_locust)
    # skaffold sets <component>.image.repository and .tag; image.registry prefixes them.
    tagged = manifests(
        render(
            helm,
            sets=["image.registry=reg.example/r", "api.image.repository=x", "api.image.tag=t1"],
        )
    )
    assert "reg.example/r/x:t1" in _images(tagged)
    assert "reg.example/r/recsys-ranker:0.1.0" in _images(tagged)


def _pod_specs(docs: list[Manifest]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] not in WORKLOADS:
            continue
        spec = doc["spec"]
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        yield doc["metadata"]["name"], spec["template"]["spec"]


def test_platform_pods_are_locked_down(default_render: str) -> None:
    checked = 0
    for name, pod in _pod_specs(manifests(default_render)):
        for container in pod["containers"]:
            if container["image"].split(":")[0] not in PLATFORM_IMAGES:
                continue  # Kafka, Cassandra: the images write their config at start
            checked += 1
            context = container["securityContext"]
            assert pod["securityContext"]["runAsNonRoot"] is True, name
            assert pod["securityContext"]["runAsUser"] == 10001, name
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], name
            assert "requests" in container["resources"], name
            assert "limits" in container["resources"], name
    assert checked >= 13  # 8 services, bootstrap, first run, 3 CronJobs


def test_every_service_has_its_probes(default_render: str) -> None:
    docs = manifests(default_render)
    for doc in docs:
        if doc["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert probe in container, f"{doc['metadata']['name']}: no {probe}"
    pods = dict(_pod_specs(docs))
    for name, port in [
        ("featurestore", 50051),
        ("candidates", 50052),
        ("ranker", 50053),
        ("experiments", 50054),
    ]:
        container = pods[f"recsys-{name}"]["containers"][0]
        assert container["readinessProbe"]["grpc"] == {"port": port}
        assert container["livenessProbe"]["grpc"] == {"port": port}
    for name in ("api", "ingest"):
        probe = pods[f"recsys-{name}"]["containers"][0]["readinessProbe"]
        assert probe["httpGet"]["path"] == "/readyz"


def test_the_api_keys_come_from_a_secret(default_render: str, production_render: str) -> None:
    for text, secret in [(default_render, "recsys-api-keys"), (production_render, None)]:
        for doc in manifests(text):
            for node in _walk(doc):
                if node.get("name") == "RECSYS_INGEST__API_KEYS":
                    ref = node["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == (secret or "recsys-ingest-api-keys")
                    assert ref["key"] == "api-keys"
                    assert "value" not in node


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            f"apiKeys:\n  value: {IngestSettings().api_keys}\n",
            'refusing the local development key "local-dev-key"',
        ),
        (
            f"apiKeys:\n  value: 'mine, {IngestSettings().api_keys}'\n",
            'refusing the local development key "local-dev-key"',
        ),
        ("apiKeys:\n  value: ''\n  generate: false\n", "no API key for the ingest API"),
        ("apiKeys:\n  value: ' , '\n", "no API key for the ingest API"),
    ],
    ids=["local-key", "local-key-among-others", "empty", "only-commas"],
)
def test_the_chart_refuses_the_local_and_empty_api_keys(
    helm: Path, tmp_path: Path, values: str, message: str
) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(values)
    done = template(helm, path)
    assert done.returncode != 0
    assert message in output(done)


def test_a_given_api_key_is_used(helm: Path) -> None:
    docs = manifests(render(helm, sets=["apiKeys.value=k1\\, k2"]))
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert base64.b64decode(secret["data"]["api-keys"]).decode() == "k1,k2"


def test_the_experiments_config_is_the_services_file(default_render: str) -> None:
    docs = manifests(default_render)
    config = next(
        d
        for d in docs
        if d["metadata"]["name"] == "recsys-experiments" and d["kind"] == "ConfigMap"
    )
    source = ROOT / "services" / "experiments" / "config" / "experiments.yaml"
    assert config["data"]["experiments.yaml"].strip() == source.read_text().strip()
    settings = next(d for d in docs if d["metadata"]["name"] == "recsys-settings")
    path = Path(settings["data"]["RECSYS_EXPERIMENTS__CONFIG"])
    pod = dict(_pod_specs(docs))["recsys-experiments"]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts[str(path.parent)] == "experiments-config"
    assert path.name == "experiments.yaml"


def test_dependencies_switch_to_external_endpoints(production_render: str) -> None:
    docs = manifests(production_render)
    assert not [
        d
        for d in docs
        if d["kind"] == "StatefulSet"
        and d["metadata"]["name"].endswith(("-kafka", "-cassandra", "-redis"))
    ]
    settings = next(d for d in docs if d["metadata"]["name"] == "recsys-settings")["data"]
    assert settings["RECSYS_KAFKA__BOOTSTRAP_SERVERS"].startswith("kafka-0.kafka.data.svc:9092")
    assert settings["RECSYS_REDIS__HOST"] == "redis-master.data.svc"


# --- monitoring --------------------------------------------------------------------------------


def test_the_prometheus_rule_is_the_rule_files(
    promtool: Path, default_render: str, tmp_path: Path
) -> None:
    rules = [d for d in manifests(default_render) if d["kind"] == "PrometheusRule"]
    assert len(rules) == 1
    assert rules[0]["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = rules[0]["spec"]
    assert spec["groups"] == rule_groups()
    assert spec["groups"]
    path = tmp_path / "rendered.rules.yml"
    path.write_text(yaml.safe_dump(spec))
    done = run([promtool, "check", "rules", path])
    assert done.returncode == 0, output(done)
    # promtool does fail on a broken rule.
    spec["groups"][0]["rules"][0]["expr"] = "sum(rate(x[5m])"
    path.write_text(yaml.safe_dump(spec))
    assert run([promtool, "check", "rules", path]).returncode != 0


def test_a_service_monitor_per_metrics_endpoint(default_render: str) -> None:
    docs = manifests(default_render)
    monitors = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceMonitor"}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    components = [
        "api",
        "ingest",
        "features",
        "bronze",
        "featurestore",
        "candidates",
        "ranker",
        "experiments",
    ]
    assert sorted(monitors) == sorted(f"recsys-{c}" for c in components)
    for component in components:
        monitor = monitors[f"recsys-{component}"]
        endpoint = monitor["spec"]["endpoints"][0]
        # The job label the rules and dashboards know, whatever the release is called.
        assert {
            "action": "replace",
            "targetLabel": "job",
            "replacement": f"recsys-{component}",
        } in (endpoint["relabelings"])
        service = services[f"recsys-{component}"]
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()


def _dashboards(text: str) -> dict[str, Manifest]:
    return {
        d["metadata"]["name"]: d
        for d in manifests(text)
        if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"
    }


def test_a_dashboard_config_map_per_file(helm: Path, default_render: str, chart_copy: Path) -> None:
    files = sorted((CHART / "files" / "dashboards").glob("*.json"))
    shipped = _dashboards(default_render)
    assert len(shipped) == len(files)
    contents = sorted(next(iter(d["data"].values())) for d in shipped.values())
    assert contents == sorted(f.read_text().rstrip("\n") for f in files)
    # No file, no ConfigMap; a new file, one more.
    for path in (chart_copy / "files" / "dashboards").glob("*.json"):
        path.unlink()
    assert _dashboards(render(helm, chart=chart_copy)) == {}
    (chart_copy / "files" / "dashboards" / "Fake_Board.json").write_text('{"title": "fake"}\n')
    (chart_copy / "files" / "dashboards" / "other.json").write_text('{"title": "other"}\n')
    rendered = _dashboards(render(helm, chart=chart_copy))
    assert sorted(rendered) == ["recsys-dashboard-fake-board", "recsys-dashboard-other"]
    assert rendered["recsys-dashboard-fake-board"]["data"] == {
        "Fake_Board.json": '{"title": "fake"}'
    }


def test_monitoring_can_be_switched_off(helm: Path) -> None:
    off = [
        "monitoring.serviceMonitors.enabled=false",
        "monitoring.prometheusRules.enabled=false",
        "monitoring.dashboards.enabled=false",
    ]
    docs = manifests(render(helm, sets=off))
    assert not [d for d in docs if d["kind"] in {"ServiceMonitor", "PrometheusRule"}]
    assert not _dashboards(render(helm, sets=off))
