"""The feature registry: each feature is declared once and everything else reads that declaration.

The stream job, the batch job, the feature store and the training-set builder all take names,
types, windows, TTLs, stores and defaults from here, so online and offline values cannot drift.

    registry = FeatureRegistry([FeatureDefinition(...), ...])   # validates on construction
    registry["session_duration_sec"].ttl
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

__all__ = [
    "Dtype",
    "Entity",
    "FeatureDefinition",
    "FeatureDefinitionError",
    "FeatureKind",
    "FeatureRegistry",
    "Store",
    "WindowType",
]

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
# The online store is a cache of recent state, not an archive.
MAX_ONLINE_TTL = timedelta(days=30)


class FeatureDefinitionError(ValueError):
    """A feature definition (or a set of them) breaks a registry rule; the message names which."""


class Dtype(StrEnum):
    INT64 = "int64"
    FLOAT64 = "float64"
    STRING = "string"
    STRING_LIST = "string_list"
    FLOAT_VECTOR = "float_vector"


class Entity(StrEnum):
    USER = "user"
    TITLE = "title"
    COUNTRY = "country"


class FeatureKind(StrEnum):
    REALTIME = "realtime"  # computed by the stream job from events, seconds fresh
    BATCH = "batch"  # computed daily from the lake


class Store(StrEnum):
    REDIS = "redis"
    CASSANDRA = "cassandra"


class WindowType(StrEnum):
    SLIDING = "sliding"
    TUMBLING = "tumbling"
    SESSION = "session"  # window closes after `window` of inactivity (the session gap)
    LAST_N = "last_n"  # the most recent `max_items` values, no time bound
    EVENT_FIELD = "event_field"  # copied from the latest event
    LOOKBACK = "lookback"  # batch aggregate over the trailing `window`
    STATIC = "static"  # a profile attribute that changes only when the member changes it


_TIMED_WINDOWS = {WindowType.SLIDING, WindowType.TUMBLING, WindowType.SESSION, WindowType.LOOKBACK}


@dataclass(frozen=True, slots=True)
class FeatureDefinition:
    """One feature. ``ttl=None`` (never expires) is allowed only for static attributes."""

    name: str
    entity: Entity
    kind: FeatureKind
    dtype: Dtype
    window_type: WindowType
    window: timedelta | None
    ttl: timedelta | None
    stores: tuple[Store, ...]
    default: Any
    description: str
    dim: int | None = None  # length of a FLOAT_VECTOR
    max_items: int | None = None  # bound of a STRING_LIST
    refresh: timedelta | None = None  # cadence of a batch feature
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for problem in _problems(self):
            raise FeatureDefinitionError(f"feature {self.name!r}: {problem}")


def _problems(f: FeatureDefinition) -> Iterator[str]:
    """Yield every rule the definition breaks (the first one is raised)."""
    if not _NAME.match(f.name):
        yield "name must be snake_case, 2-63 characters, starting with a letter"
    if not f.description.strip():
        yield "description is required"
    if not f.stores:
        yield "at least one store is required"
    if len(set(f.stores)) != len(f.stores):
        yield "stores are listed twice"
    yield from _window_problems(f)
    yield from _ttl_problems(f)
    yield from _shape_problems(f)
    yield from _default_problems(f)


def _window_problems(f: FeatureDefinition) -> Iterator[str]:
    if f.window_type in _TIMED_WINDOWS:
        if f.window is None or f.window <= timedelta(0):
            yield f"a {f.window_type} window needs a positive duration"
    elif f.window is not None:
        yield f"a {f.window_type} feature has no time window; window must be None"
    if f.window_type is WindowType.LAST_N and not f.max_items:
        yield "a last_n feature needs max_items"
    if f.kind is FeatureKind.REALTIME and f.window_type is WindowType.LOOKBACK:
        yield "lookback windows belong to batch features"
    if f.kind is FeatureKind.BATCH:
        if f.window_type not in {WindowType.LOOKBACK, WindowType.STATIC}:
            yield "batch features use lookback or static windows"
        if f.refresh is None or f.refresh <= timedelta(0):
            yield "batch features need a positive refresh cadence"
        if Store.CASSANDRA not in f.stores:
            yield "batch features are stored in Cassandra"
    elif f.refresh is not None:
        yield "refresh is a batch-feature setting"
    if f.kind is FeatureKind.REALTIME and Store.REDIS not in f.stores:
        yield "real-time features are served from Redis"


def _ttl_problems(f: FeatureDefinition) -> Iterator[str]:
    if f.ttl is None:
        if f.window_type is not WindowType.STATIC:
            yield "only static features may live without a TTL"
        return
    if f.ttl <= timedelta(0):
        yield "ttl must be positive"
        return
    if f.kind is FeatureKind.REALTIME:
        if f.window is not None and f.ttl < f.window:
            # The value still describes its window after the last event; expiring earlier
            # would serve the default for a member who is still inside the window.
            yield f"ttl {f.ttl} is shorter than its {f.window} window"
        if f.ttl > MAX_ONLINE_TTL:
            yield f"ttl {f.ttl} exceeds the online-store limit of {MAX_ONLINE_TTL}"
    if f.kind is FeatureKind.BATCH and f.refresh is not None and f.ttl < 2 * f.refresh:
        # One missed daily run must not blank the feature for everybody.
        yield f"ttl {f.ttl} must cover two refresh cycles ({2 * f.refresh})"


def _shape_problems(f: FeatureDefinition) -> Iterator[str]:
    if f.dtype is Dtype.FLOAT_VECTOR:
        if not f.dim or f.dim < 1:
            yield "a float_vector needs dim >= 1"
    elif f.dim is not None:
        yield "dim applies only to float_vector"
    if f.max_items is not None and f.dtype is not Dtype.STRING_LIST:
        yield "max_items applies only to string_list"


def _default_problems(f: FeatureDefinition) -> Iterator[str]:
    d = f.default
    ok: bool
    match f.dtype:
        case Dtype.INT64:
            ok = isinstance(d, int) and not isinstance(d, bool)
        case Dtype.FLOAT64:
            ok = isinstance(d, float) and math.isfinite(d)
        case Dtype.STRING:
            ok = isinstance(d, str)
        case Dtype.STRING_LIST:
            ok = isinstance(d, tuple) and all(isinstance(x, str) for x in d)
            if ok and f.max_items is not None and len(d) > f.max_items:
                yield f"default has more than max_items={f.max_items} entries"
        case Dtype.FLOAT_VECTOR:
            ok = isinstance(d, tuple) and all(isinstance(x, float) and math.isfinite(x) for x in d)
            if ok and f.dim is not None and len(d) != f.dim:
                yield f"default has {len(d)} values, dim is {f.dim}"
    if not ok:
        yield f"default {d!r} is not a {f.dtype} (lists and vectors are tuples)"


class FeatureRegistry(Mapping[str, FeatureDefinition]):
    """An immutable, validated set of feature definitions, looked up by name."""

    def __init__(self, definitions: Iterable[FeatureDefinition]) -> None:
        by_name: dict[str, FeatureDefinition] = {}
        for definition in definitions:
            if definition.name in by_name:
                raise FeatureDefinitionError(f"feature {definition.name!r} is defined twice")
            by_name[definition.name] = definition
        if not by_name:
            raise FeatureDefinitionError("a registry needs at least one feature")
        self._by_name = by_name

    def __getitem__(self, name: str) -> FeatureDefinition:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"unknown feature {name!r}; known: {sorted(self._by_name)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def select(
        self,
        *,
        entity: Entity | None = None,
        kind: FeatureKind | None = None,
        store: Store | None = None,
    ) -> list[FeatureDefinition]:
        """Definitions matching every given criterion, in declaration order."""
        return [
            f
            for f in self._by_name.values()
            if (entity is None or f.entity == entity)
            and (kind is None or f.kind == kind)
            and (store is None or store in f.stores)
        ]

    def defaults(self, names: Iterable[str]) -> dict[str, Any]:
        return {name: self[name].default for name in names}
