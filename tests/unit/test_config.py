from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from recsys.config import Settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read the environment; the developer's own RECSYS_ variables must not leak in."""
    for var in [v for v in os.environ if v.startswith("RECSYS_")]:
        monkeypatch.delenv(var)


def test_defaults_are_the_documented_local_ports() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (s.kafka.port, s.cassandra.port, s.redis.port) == (9092, 9042, 6379)
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092"


def test_nested_settings_come_from_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_KAFKA__PORT", "19092")
    monkeypatch.setenv("RECSYS_CASSANDRA__HOSTS", "10.0.0.1, 10.0.0.2")
    monkeypatch.setenv("RECSYS_REDIS__HOST", "redis")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert s.cassandra.contact_points == ["10.0.0.1", "10.0.0.2"]
    assert s.redis.url == "redis://redis:6379/0"


def test_explicit_bootstrap_servers_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_KAFKA__BOOTSTRAP_SERVERS", "kafka-0:9092,kafka-1:9092")
    assert Settings(_env_file=None).kafka.bootstrap_servers == "kafka-0:9092,kafka-1:9092"  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("RECSYS_REDIS__PORT", "70000"),
        ("RECSYS_KAFKA__PORT", "not-a-port"),
        ("RECSYS_CASSANDRA__KEYSPACE", "Bad-Keyspace"),
        ("RECSYS_LOG__LEVEL", "CHATTY"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    field = var.removeprefix("RECSYS_").lower().split("__")[-1]
    with pytest.raises(ValidationError, match=field):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_lake_and_the_registry_follow_the_state_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RECSYS_INFRA__STATE_DIR", str(tmp_path / "state"))
    s = Settings()
    assert s.lake.warehouse == tmp_path / "state" / "lake"
    assert s.models.root == tmp_path / "state" / "models"
    monkeypatch.setenv("RECSYS_LAKE__WAREHOUSE", str(tmp_path / "elsewhere"))
    assert Settings().lake.warehouse == tmp_path / "elsewhere"  # an explicit place wins
