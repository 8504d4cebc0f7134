"""``recsys pipeline first-run``: what `make up` runs once the services are up.

A platform that already has its models registered starts at once: the only work is putting the
registry's current fallback lists back into Redis if they expired there. Otherwise the platform
gets what it lacks, in order: a catalog (`recsys world generate`, the default synthetic world),
events (`recsys simulate`, a burst of traffic through the ingest API), then the bootstrap
(events -> models and fallback lists). The two data steps run as their own `recsys` commands, so
this package imports nothing of the data generator's.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError

from recsys.config import Settings
from recsys.features.title_table import TITLE_FEATURES_MODEL
from recsys.lake import table_identifier
from recsys.models import FALLBACKS_MODEL, ModelRegistry
from recsys_pipelines.bootstrap import BootstrapOptions, BootstrapReport, bootstrap
from recsys_pipelines.errors import PipelineError

if TYPE_CHECKING:
    from recsys.clients.cassandra import CassandraClient

__all__ = ["PlatformState", "first_run", "platform_state", "required_models"]

Progress = Callable[[str], None]
Runner = Callable[[Sequence[str]], int]


@dataclass(frozen=True)
class PlatformState:
    registered: dict[str, str]  # model -> current version
    missing: tuple[str, ...]  # required models with no current version
    has_catalog: bool  # dim_titles exists
    has_events: bool  # bronze holds at least one event

    @property
    def ready(self) -> bool:
        return not self.missing


def required_models() -> tuple[str, ...]:
    """What a started platform needs: the fallback lists, the two learned models and the title
    feature table the serving services hold in memory."""
    return (FALLBACKS_MODEL, "ranker", TITLE_FEATURES_MODEL, "two_tower")


def platform_state(settings: Settings, catalog: Catalog, registry: ModelRegistry) -> PlatformState:
    registered = {}
    for name in registry.names():
        token = registry.current_token(name)
        if token is not None:
            registered[name] = token
    missing = tuple(m for m in required_models() if m not in registered)
    return PlatformState(
        registered=registered,
        missing=missing,
        has_catalog=catalog.table_exists(table_identifier(settings.lake, "dim_titles")),
        has_events=_bronze_rows(settings, catalog) > 0,
    )


def _bronze_rows(settings: Settings, catalog: Catalog) -> int:
    try:
        table = catalog.load_table(table_identifier(settings.lake, settings.pipelines.bronze_table))
    except NoSuchTableError:
        return 0
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary.get("total-records") or 0)


def _recsys(argv: Sequence[str]) -> int:
    """Run a `recsys` command in its own process, its output passed through."""
    return subprocess.run([sys.executable, "-m", "recsys", *argv], check=False).returncode


def first_run(
    settings: Settings,
    catalog: Catalog,
    *,
    rate: float,
    duration_s: float,
    progress: Progress,
    run: Runner = _recsys,
    cassandra: CassandraClient | None = None,
) -> BootstrapReport | None:
    """Bring the platform to "models registered"; None when it already was."""
    from recsys_pipelines.fallbacks import load_fallbacks_into_redis

    registry = ModelRegistry.from_settings(settings.models)
    state = platform_state(settings, catalog, registry)
    if state.ready:
        reloaded = load_fallbacks_into_redis(settings, registry)
        current = ", ".join(f"{n} {v}" for n, v in sorted(state.registered.items()))
        progress(f"models registered ({current}): nothing to do")
        if reloaded:
            progress(f"fallback lists {reloaded} written to Redis again")
        return None
    progress(
        f"no current {', '.join(state.missing)} in {registry.root}: bootstrapping the platform"
    )
    if not state.has_catalog:
        _step(progress, "world", run, ["world", "generate"])
    if not state.has_events:
        _step(
            progress,
            "traffic",
            run,
            ["simulate", "--rate", f"{rate:g}", "--duration", f"{duration_s:g}"],
        )
    return bootstrap(
        settings,
        catalog,
        BootstrapOptions(),
        progress=progress,
        cassandra=cassandra,
    )


def _step(progress: Progress, name: str, run: Runner, argv: list[str]) -> None:
    progress(f"[{name}] recsys {' '.join(argv)}")
    started = time.perf_counter()
    code = run(argv)
    if code != 0:
        raise PipelineError(f"`recsys {' '.join(argv)}` failed (exit {code}); see its output above")
    progress(f"[{name}] {time.perf_counter() - started:.1f} s")
