"""`recsys models list|show|promote|rollback` over a registry in a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from recsys.cli.main import build_app
from recsys.models import Manifest, ModelRegistry


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "models")
    for size in (10, 20):
        with registry.new_version("two_tower") as staging:
            (staging / "user_tower.onnx").write_bytes(b"x" * size)
            staging.manifest = Manifest(metrics={"recall@10": size / 100}, features=["f1"])
    return registry


def run(registry: ModelRegistry, *argv: str) -> Result:
    env = {"RECSYS_MODELS__ROOT": str(registry.root), "COLUMNS": "200"}
    return CliRunner().invoke(build_app(), ["models", *argv], env=env)


def test_list_show_promote_rollback(registry: ModelRegistry) -> None:
    listed = run(registry, "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == [
        {"name": "two_tower", "current": None, "latest": "v0002", "versions": 2, "created_at": None}
    ]
    first = run(registry, "promote", "two_tower", "v0001")
    assert first.output == "two_tower: current - -> v0001\n"
    assert "v0002" in run(registry, "promote", "two_tower", "v0002").output
    assert "already current" in run(registry, "promote", "two_tower", "v0002").output

    versions = run(registry, "list", "two_tower")
    assert versions.exit_code == 0, versions.output
    lines = versions.output.splitlines()
    assert lines[0].startswith("  v0001 ")
    assert lines[1].startswith("* v0002 ")
    assert "recall@10=0.2" in lines[1]

    shown = json.loads(run(registry, "show", "two_tower", "--json").output)
    assert shown["current"] is True
    assert shown["manifest"]["version"] == "v0002"
    assert shown["manifest"]["files"]["user_tower.onnx"]["size"] == 20
    assert "two_tower v0001\n" in run(registry, "show", "two_tower", "v0001").output

    rolled = run(registry, "rollback", "two_tower")
    assert rolled.output == "two_tower: current v0002 -> v0001 (rolled back)\n"
    assert registry.current_token("two_tower") == "v0001"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["show", "ranker"], "error: unknown model 'ranker'"),
        (["show", "two_tower"], "error: two_tower has no current version; promote one first"),
        (["show", "two_tower", "v0009"], "error: two_tower has no version 'v0009'"),
        (["promote", "two_tower", "latest"], "error: two_tower has no version 'latest'"),
        (["rollback", "two_tower"], "error: two_tower has no earlier current version"),
        (["list", "ranker"], "error: unknown model 'ranker'"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    registry: ModelRegistry, argv: list[str], expected: str
) -> None:
    result = run(registry, *argv)
    assert result.exit_code == 1
    assert result.output.startswith(expected)
    assert result.output.count("\n") == 1


def test_a_corrupt_version_is_listed_as_such_and_refused(registry: ModelRegistry) -> None:
    (registry.root / "two_tower" / "versions" / "v0001" / "manifest.json").write_text("{")
    versions = run(registry, "list", "two_tower")
    assert versions.exit_code == 0
    assert "v0001   corrupt manifest" in versions.output
    assert "v0002   " in versions.output
    promoted = run(registry, "promote", "two_tower", "v0001")
    assert promoted.exit_code == 1
    assert promoted.output.startswith("error: corrupt manifest ")


def test_an_empty_registry(tmp_path: Path) -> None:
    result = run(ModelRegistry(tmp_path / "none"), "list")
    assert result.exit_code == 0
    assert result.output.startswith("no models in ")
