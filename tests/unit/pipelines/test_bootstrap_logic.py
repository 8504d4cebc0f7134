"""The bootstrap's label range, and `first-run`'s decisions (which steps a platform needs)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from recsys.config import ModelsSettings, Settings
from recsys.models import FallbackLists, Manifest, ModelRegistry
from recsys_pipelines.bootstrap import label_days
from recsys_pipelines.errors import PipelineError
from recsys_pipelines.fallbacks import publish_fallbacks
from recsys_pipelines.firstrun import first_run, platform_state, required_models
from tests.unit.pipelines.scenario import catalog
from tests.unit.pipelines.scripted import ScriptedLake

TODAY = date(2026, 11, 29)


def test_label_days_stop_where_the_horizon_has_not_ended() -> None:
    # Imported history: the whole range is final.
    assert label_days(date(1998, 4, 22), 7, TODAY) == (date(1998, 4, 16), date(1998, 4, 22))
    # Live data up to yesterday: labels up to the day before yesterday.
    assert label_days(date(2026, 11, 28), 7, TODAY) == (date(2026, 11, 22), date(2026, 11, 27))
    # Only today's events: no finished label day among the last one.
    assert label_days(TODAY, 1, TODAY) is None
    assert label_days(date(2026, 11, 28), 1, TODAY) is None


class Runner:
    def __init__(self, code: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.code = code

    def __call__(self, argv: Sequence[str]) -> int:
        self.calls.append(list(argv))
        return self.code


def _settings(tmp_path: Path, lake: ScriptedLake) -> Settings:
    return Settings().model_copy(
        update={
            "lake": lake.lake,
            "pipelines": lake.settings,
            "models": ModelsSettings(root=tmp_path / "models"),
        }
    )


def test_a_platform_with_its_models_starts_at_once(tmp_path: Path) -> None:
    lake = ScriptedLake.create(tmp_path)
    settings = _settings(tmp_path, lake)
    registry = ModelRegistry(settings.models.root)
    lists = FallbackLists(as_of=TODAY, window_days=30, top_n=1, global_titles=("t1",))
    registry.promote("fallbacks", publish_fallbacks(registry, lists, {}))
    for name in set(required_models()) - {"fallbacks"}:
        with registry.new_version(name) as staging:
            (staging / "x").write_bytes(b"1")
            staging.manifest = Manifest()
        assert staging.version is not None
        registry.promote(name, staging.version)
    state = platform_state(settings, lake.catalog, registry)
    assert state.ready
    assert (state.has_catalog, state.has_events) == (False, False)
    runner, lines = Runner(), list[str]()
    # Its only work is the Redis reload of the fallback lists (tested on the real Redis in
    # tests/integration/models); here Redis refuses, which proves nothing else was attempted.
    settings = settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"port": _refused_port()})}
    )
    with pytest.raises(RedisConnectionError):
        first_run(settings, lake.catalog, rate=1, duration_s=1, progress=lines.append, run=runner)
    assert runner.calls == []
    assert lines == []


def test_an_empty_platform_gets_a_world_and_traffic(tmp_path: Path) -> None:
    lake = ScriptedLake.create(tmp_path)
    settings = _settings(tmp_path, lake)
    runner, lines = Runner(code=3), list[str]()
    with pytest.raises(PipelineError, match=r"^`recsys world generate` failed \(exit 3\)"):
        first_run(
            settings, lake.catalog, rate=250, duration_s=30, progress=lines.append, run=runner
        )
    assert runner.calls == [["world", "generate"]]
    assert lines[0].startswith("no current fallbacks")

    catalog(lake)  # a catalog, still no event: only the traffic is generated
    runner = Runner(code=1)
    with pytest.raises(PipelineError, match=r"^`recsys simulate --rate 250 --duration 30` failed"):
        first_run(
            settings, lake.catalog, rate=250, duration_s=30, progress=lines.append, run=runner
        )
    assert runner.calls == [["simulate", "--rate", "250", "--duration", "30"]]


def _refused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
