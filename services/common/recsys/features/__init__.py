"""The feature registry (:mod:`.registry`) and the platform's features (:mod:`.definitions`)."""

from recsys.features.definitions import FEATURES, GENRE_COUNT, SESSION_GAP
from recsys.features.registry import (
    Dtype,
    Entity,
    FeatureDefinition,
    FeatureDefinitionError,
    FeatureKind,
    FeatureRegistry,
    Store,
    WindowType,
)

__all__ = [
    "FEATURES",
    "GENRE_COUNT",
    "SESSION_GAP",
    "Dtype",
    "Entity",
    "FeatureDefinition",
    "FeatureDefinitionError",
    "FeatureKind",
    "FeatureRegistry",
    "Store",
    "WindowType",
]
