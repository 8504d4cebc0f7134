"""The experiments configuration: a YAML file (a ConfigMap in Kubernetes), validated on load.

    config = load_config(Path("experiments.yaml"))   # ConfigError naming the line on a problem

Layers hold mutually exclusive experiments: each experiment owns a range of its layer's 10,000
buckets, and a member is in the experiment whose range holds their layer bucket. Layers are
independent of each other (each hashes with its own salt), so a member is in at most one
experiment per layer and may be in one of every layer. Each variant carries serving parameters;
what a variant leaves unset comes from ``defaults``, which the permanent holdout and members in
no experiment get.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "BUCKETS",
    "ConfigError",
    "Experiment",
    "ExperimentsConfig",
    "Layer",
    "ServingParams",
    "Targeting",
    "Variant",
    "Weights",
    "iter_experiments",
    "load_config",
    "parse_config",
]

BUCKETS = 10_000
_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class ConfigError(ValueError):
    """The configuration is not valid; every problem is one line naming where it is."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weights(_Strict):
    """V = play P(play) + complete P(complete) + rate_high P(rate_high)."""

    play: float = Field(ge=0, le=100)
    complete: float = Field(ge=0, le=100)
    rate_high: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _not_all_zero(self) -> Weights:
        if not (self.play or self.complete or self.rate_high):
            raise ValueError("objective weights are all 0: nothing would rank")
        return self


class ServingParams(_Strict):
    """What a variant changes; unset fields keep the defaults' (or another layer's) value."""

    candidates_model_version: str | None = Field(default=None, pattern=r"^$|^v\d{4,}$")
    ranker_model_version: str | None = Field(default=None, pattern=r"^$|^v\d{4,}$")
    weights: Weights | None = None
    candidates: int | None = Field(default=None, ge=10, le=2000)
    diversity: float | None = Field(default=None, ge=0, le=1)
    new_release_boost: float | None = Field(default=None, ge=0, le=1)
    max_per_genre: int | None = Field(default=None, ge=1, le=100)

    def set_fields(self) -> set[str]:
        return {name for name in type(self).model_fields if getattr(self, name) is not None}

    def over(self, base: ServingParams) -> ServingParams:
        """This variant's values over ``base``."""
        return base.model_copy(update={n: getattr(self, n) for n in self.set_fields()})


DEFAULT_SERVING = ServingParams(
    candidates_model_version="",
    ranker_model_version="",
    weights=Weights(play=1.0, complete=0.5, rate_high=0.5),
    candidates=500,
    diversity=0.0,
    new_release_boost=0.0,
    max_per_genre=100,
)


class Targeting(_Strict):
    """Who may enter: empty lists mean everyone."""

    countries: list[str] = Field(default_factory=list)
    devices: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _codes(self) -> Targeting:
        bad = [c for c in self.countries if not re.fullmatch(r"[A-Z]{2}", c)]
        if bad:
            raise ValueError(f"countries {bad} are not ISO 3166-1 alpha-2 codes")
        return self

    def admits(self, country: str, device: str) -> bool:
        return (not self.countries or country in self.countries) and (
            not self.devices or device in self.devices
        )


class Variant(_Strict):
    name: str = Field(pattern=_NAME)
    weight: int = Field(ge=0, le=BUCKETS, description="Share of the experiment, relative.")
    serving: ServingParams = Field(default_factory=ServingParams)


class Experiment(_Strict):
    id: str = Field(pattern=_NAME)
    salt: str = Field(default="", description="Hash salt of the variant split; empty: the id.")
    buckets: tuple[int, int] = Field(
        description="[first, end) of the layer's 10,000 buckets this experiment owns."
    )
    targeting: Targeting = Field(default_factory=Targeting)
    variants: list[Variant] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Experiment:
        first, end = self.buckets
        if not 0 <= first < end <= BUCKETS:
            raise ValueError(f"buckets [{first}, {end}) must satisfy 0 <= first < end <= {BUCKETS}")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names repeat: {names}")
        if sum(v.weight for v in self.variants) <= 0:
            raise ValueError("variant weights add up to 0")
        return self

    @property
    def variant_salt(self) -> str:
        return self.salt or self.id


class Layer(_Strict):
    name: str = Field(pattern=_NAME)
    salt: str = Field(default="", description="Hash salt of the layer's buckets; empty: the name.")
    experiments: list[Experiment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _exclusive(self) -> Layer:
        ranges = sorted((e.buckets, e.id) for e in self.experiments)
        for ((_, end), a), ((first, _), b) in itertools.pairwise(ranges):
            if first < end:
                raise ValueError(
                    f"experiments {a} and {b} share buckets: experiments of a layer are "
                    "mutually exclusive"
                )
        return self

    @property
    def bucket_salt(self) -> str:
        return self.salt or self.name

    def serving_fields(self) -> set[str]:
        return {f for e in self.experiments for v in e.variants for f in v.serving.set_fields()}


class Holdout(_Strict):
    percent: float = Field(default=1.0, ge=0, le=10, description="Members who always get defaults.")
    salt: str = "holdout"


class ExperimentsConfig(_Strict):
    version: str = Field(min_length=1, max_length=64, description="Reported with assignments.")
    holdout: Holdout = Field(default_factory=Holdout)
    defaults: ServingParams = Field(default_factory=ServingParams)
    layers: list[Layer] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> ExperimentsConfig:
        for kind, names in (
            ("layer", [layer.name for layer in self.layers]),
            ("experiment", [e.id for layer in self.layers for e in layer.experiments]),
        ):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{kind} names repeat: {repeated}")
        owner: dict[str, str] = {}
        for layer in self.layers:
            for field in sorted(layer.serving_fields()):
                if field in owner:
                    raise ValueError(
                        f"layers {owner[field]} and {layer.name} both set serving.{field}: "
                        "a member in both would get one of them at random"
                    )
                owner[field] = layer.name
        return self

    @property
    def serving_defaults(self) -> ServingParams:
        return self.defaults.over(DEFAULT_SERVING)


def parse_config(text: str, *, source: str = "<config>") -> ExperimentsConfig:
    """Validate YAML text; ConfigError with ``source:line: problem`` per problem."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{source}:1: the configuration must be a mapping"])
    try:
        return ExperimentsConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [p for p in error["loc"] if not isinstance(p, str) or p not in _UNION_TAGS]
            line = _line(node, loc)
            path = ".".join(str(p) for p in loc) or "(top)"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{source}:{line}: {path}: {message}")
        raise ConfigError(problems) from None


def load_config(path: Path) -> ExperimentsConfig:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    return parse_config(text, source=str(path))


# pydantic puts the type of a union member in the location (``weights.Weights.play``).
_UNION_TAGS = {"Weights", "int", "str", "float"}


def _line(node: Any, loc: Sequence[int | str]) -> int:
    """The 1-based line of the deepest node of ``loc`` found in the composed YAML."""
    line = node.start_mark.line + 1 if node is not None else 1
    for key in loc:
        child = _child(node, key)
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def _child(node: Any, key: int | str) -> Any:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                return v
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]
    return None


def iter_experiments(config: ExperimentsConfig) -> Iterator[tuple[Layer, Experiment]]:
    for layer in config.layers:
        for experiment in layer.experiments:
            yield layer, experiment
