"""The model registry: publishing, the current pointer, and every way a version can be broken."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recsys.models import Manifest, ModelRegistry, RegistryError, Staging


def publish(registry: ModelRegistry, name: str = "ranker", payload: bytes = b"") -> str:
    with registry.new_version(name) as staging:
        (staging / "model.onnx").write_bytes(payload or os.urandom(64))
        (staging.path / "spec").mkdir()
        (staging.path / "spec" / "inputs.json").write_text('{"width": 3}')
        staging.manifest = Manifest(
            training_data={"bronze_snapshot_id": 42, "as_of": "1998-04-22"},
            features=["recently_watched_title_ids"],
            metrics={"recall@10": 0.12, "table": {"ease": {"ndcg@10": 0.2}}},
            params={"epochs": 3},
        )
    assert staging.version is not None
    return staging.version


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models", history=3)


def one_line_error(excinfo: pytest.ExceptionInfo[RegistryError]) -> str:
    message = str(excinfo.value)
    assert message
    assert "\n" not in message
    return message


# --- publishing -----------------------------------------------------------------------------------


def test_publish_gives_monotonic_versions_with_a_filled_manifest(registry: ModelRegistry) -> None:
    assert registry.names() == []
    first = publish(registry, payload=b"first")
    second = publish(registry)
    assert (first, second) == ("v0001", "v0002")
    assert registry.names() == ["ranker"]
    assert registry.version_ids("ranker") == ["v0001", "v0002"]
    assert registry.last_published("ranker") == "v0002"
    found = registry.get("ranker", "v0001")
    m = found.manifest
    assert (m.name, m.version, m.format) == ("ranker", "v0001", 1)
    assert m.created_at is not None
    assert m.created_at <= datetime.now(UTC)
    assert m.code_version.startswith("0.1.0")
    assert m.training_data["bronze_snapshot_id"] == 42
    assert sorted(m.files) == ["model.onnx", "spec/inputs.json"]
    assert m.files["model.onnx"].size == 5
    assert found.file("model.onnx").read_bytes() == b"first"
    assert [v.version for v in registry.versions("ranker")] == ["v0001", "v0002"]
    # published, not current: promotion is a separate, explicit step
    assert registry.current("ranker") is None
    assert registry.current_token("ranker") is None


def test_publisher_values_are_kept(registry: ModelRegistry) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with registry.new_version("fallbacks") as staging:
        (staging / "fallbacks.json").write_text("{}")
        staging.manifest = Manifest(name="fallbacks", created_at=when, code_version="abc")
    m = registry.get("fallbacks", "v0001").manifest
    assert (m.created_at, m.code_version) == (when, "abc")


def try_publish(
    registry: ModelRegistry, write: Callable[[Staging], object], manifest: Manifest | None
) -> None:
    with registry.new_version("ranker") as staging:
        write(staging)
        staging.manifest = manifest


def crash(staging: Staging) -> None:
    (staging / "model.onnx").write_bytes(b"half")
    raise RuntimeError("training crashed")


def test_a_failed_publication_leaves_nothing(registry: ModelRegistry) -> None:
    publish(registry)
    with pytest.raises(RuntimeError):
        try_publish(registry, crash, Manifest())
    assert registry.version_ids("ranker") == ["v0001"]
    assert list((registry.root / "ranker" / ".staging").iterdir()) == []


@pytest.mark.parametrize(
    ("write", "expected"),
    [
        (lambda s: (s / "x.onnx").write_bytes(b"1"), "no manifest"),
        (lambda s: None, "holds no file"),
        (lambda s: (s / "manifest.json").write_text("{}"), "registry's to write"),
        (lambda s: (s / "link").symlink_to("/etc/hostname"), "symbolic link"),
    ],
)
def test_bad_publications_are_refused(
    registry: ModelRegistry, write: Callable[[Staging], object], expected: str
) -> None:
    manifest = None if expected == "no manifest" else Manifest()
    with pytest.raises(RegistryError) as excinfo:
        try_publish(registry, write, manifest)
    assert expected in one_line_error(excinfo)
    assert not (registry.root / "ranker" / "versions" / "v0001").exists()


def test_the_manifest_must_name_the_model_it_is_published_under(registry: ModelRegistry) -> None:
    with pytest.raises(RegistryError) as excinfo:
        try_publish(registry, lambda s: (s / "x").write_bytes(b"1"), Manifest(name="two_tower"))
    assert "names another model" in one_line_error(excinfo)


def test_concurrent_publishers_get_distinct_versions(registry: ModelRegistry) -> None:
    publish(registry)  # the model directory exists; the threads race on the version id only
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(5):
                publish(registry)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert registry.version_ids("ranker") == [f"v{i:04d}" for i in range(1, 22)]


# --- the pointer ----------------------------------------------------------------------------------


def test_promote_and_rollback(registry: ModelRegistry) -> None:
    v1, v2, v3 = publish(registry), publish(registry), publish(registry)
    registry.promote("ranker", v1)
    registry.promote("ranker", v2)
    registry.promote("ranker", v3)
    current = registry.current("ranker")
    assert current is not None
    assert current.version == v3
    assert registry.rollback("ranker").version == v2
    assert registry.rollback("ranker").version == v1
    with pytest.raises(RegistryError) as excinfo:
        registry.rollback("ranker")
    assert "no earlier current version" in one_line_error(excinfo)
    assert registry.current_token("ranker") == v1  # a refused rollback changes nothing


def test_rollback_remembers_a_bounded_history(registry: ModelRegistry) -> None:
    versions = [publish(registry) for _ in range(6)]
    for v in versions:
        registry.promote("ranker", v)
    pointer = json.loads((registry.root / "ranker" / "current.json").read_text())
    assert pointer["previous"] == versions[2:5]  # history=3
    assert [registry.rollback("ranker").version for _ in range(3)] == versions[4:1:-1]


def test_rollback_before_any_promotion_is_refused(registry: ModelRegistry) -> None:
    publish(registry)
    with pytest.raises(RegistryError) as excinfo:
        registry.rollback("ranker")
    assert "ranker has no earlier current version" in one_line_error(excinfo)


def test_current_token_changes_exactly_when_current_changes(registry: ModelRegistry) -> None:
    publish(registry)
    tokens: list[str | None] = []
    changed: list[bool] = []

    def step(action: str) -> None:
        before = registry.current("ranker")
        if action == "publish":
            publish(registry)
        elif action == "rollback":
            registry.rollback("ranker")
        else:
            registry.promote("ranker", action)
        after = registry.current("ranker")
        tokens.append(registry.current_token("ranker"))
        changed.append((before and before.version) != (after and after.version))

    for action in ["publish", "v0001", "publish", "v0001", "v0002", "publish", "rollback", "v0004"]:
        step(action)
    assert tokens == [None, "v0001", "v0001", "v0001", "v0002", "v0002", "v0001", "v0004"]
    token_changed = [a != b for a, b in zip([None, *tokens], tokens, strict=False)]
    assert token_changed == changed


def test_promoting_a_broken_version_is_refused(registry: ModelRegistry) -> None:
    v1, v2 = publish(registry), publish(registry)
    registry.promote("ranker", v1)
    (registry.root / "ranker" / "versions" / v2 / "model.onnx").unlink()
    with pytest.raises(RegistryError) as excinfo:
        registry.promote("ranker", v2)
    assert "model.onnx is missing" in one_line_error(excinfo)
    assert registry.current_token("ranker") == v1


# --- bad input: one line each ------------------------------------------------------------------


def test_unknown_names_and_versions(registry: ModelRegistry) -> None:
    publish(registry)
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: registry.get("two_tower", "v0001"), "unknown model 'two_tower'"),
        (lambda: registry.current("two_tower"), "unknown model 'two_tower'"),
        (lambda: registry.promote("two_tower", "v0001"), "unknown model 'two_tower'"),
        (lambda: registry.rollback("two_tower"), "unknown model 'two_tower'"),
        (lambda: registry.versions("two_tower"), "unknown model 'two_tower'"),
        (lambda: registry.get("ranker", "v0002"), "ranker has no version 'v0002' (latest: v0001)"),
        (lambda: registry.promote("ranker", "v9"), "has no version 'v9'"),
        (lambda: registry.get("ranker", "../ranker/versions/v0001"), "has no version"),
        (lambda: registry.get("../x", "v0001"), "invalid model name"),
        (lambda: registry.new_version("Two Tower"), "invalid model name"),
    ]
    for call, expected in cases:
        with pytest.raises(RegistryError) as excinfo:
            call()
        assert expected in one_line_error(excinfo)
    with pytest.raises(RegistryError, match=r"\(models: ranker\)"):
        registry.rollback("x")
    assert registry.current_token("two_tower") is None


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        ("{not json", "corrupt manifest"),
        ('{"name": "ranker", "version": "v0001", "files": []}', "corrupt manifest"),
        ('{"name": "ranker", "version": "v0001", "format": 99}', "corrupt manifest"),
        ('{"name": "ranker", "version": "v0002"}', "it describes 'ranker' 'v0002'"),
        ("", "corrupt manifest"),
        (None, "no manifest.json"),
        (
            '{"name": "ranker", "version": "v0001", "files": {"../../x": '
            '{"sha256": "' + "0" * 64 + '", "size": 1}}}',
            "corrupt manifest",
        ),
    ],
)
def test_a_corrupt_manifest_is_one_line(
    registry: ModelRegistry, corrupt: str | None, expected: str
) -> None:
    v1 = publish(registry)
    manifest = registry.root / "ranker" / "versions" / v1 / "manifest.json"
    if corrupt is None:
        manifest.unlink()
    else:
        manifest.write_text(corrupt)
    with pytest.raises(RegistryError) as excinfo:
        registry.get("ranker", v1)
    message = one_line_error(excinfo)
    assert expected in message
    assert str(manifest.parent) in message


def test_missing_and_altered_files(registry: ModelRegistry) -> None:
    v1 = publish(registry, payload=b"abcdef")
    registry.promote("ranker", v1)
    model = registry.root / "ranker" / "versions" / v1 / "model.onnx"

    model.write_bytes(b"abcdeg")  # same size: only the hash notices
    assert registry.get("ranker", v1, verify=False).version == v1
    with pytest.raises(RegistryError) as excinfo:
        registry.current("ranker")
    assert "ranker v0001: model.onnx was altered" in one_line_error(excinfo)

    model.write_bytes(b"abc")
    with pytest.raises(RegistryError) as excinfo:
        registry.get("ranker", v1, verify=False)
    assert "model.onnx has 3 bytes, the manifest says 6" in one_line_error(excinfo)

    model.unlink()
    with pytest.raises(RegistryError) as excinfo:
        registry.get("ranker", v1)
    assert "model.onnx is missing" in one_line_error(excinfo)


def test_asking_for_a_file_the_version_lacks(registry: ModelRegistry) -> None:
    found = registry.get("ranker", publish(registry))
    with pytest.raises(RegistryError) as excinfo:
        found.file("weights.bin")
    assert "has no file 'weights.bin' (files: model.onnx, spec/inputs.json)" in one_line_error(
        excinfo
    )


def test_a_corrupt_pointer_is_one_line(registry: ModelRegistry) -> None:
    registry.promote("ranker", publish(registry))
    pointer = registry.root / "ranker" / "current.json"
    for text in ["", "[]", '{"version": "../etc"}', '{"version": "v0001", "previous": [1]}']:
        pointer.write_text(text)
        with pytest.raises(RegistryError) as excinfo:
            registry.current_token("ranker")
        assert f"corrupt current pointer {pointer}" in one_line_error(excinfo)
