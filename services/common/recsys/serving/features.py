"""Registry values <-> ``recsys.common.v1`` messages (FeatureValue, Feature, FeatureSet).

The feature store builds a FeatureSet once per request; the candidates and ranker services turn
the one they are passed back into the registry columns :mod:`recsys.models.vectorize` reads. A
value whose kind does not match the registry's dtype is a bad request (INVALID_ARGUMENT).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from recsys.common.v1 import common_pb2
from recsys.features import FEATURES
from recsys.features.registry import Dtype
from recsys.serving.errors import invalid

__all__ = ["Source", "feature_message", "feature_value", "user_columns", "value_message"]

Source = common_pb2.FeatureSource
_KIND = {
    Dtype.INT64: "int64_value",
    Dtype.FLOAT64: "float64_value",
    Dtype.STRING: "string_value",
    Dtype.STRING_LIST: "string_list_value",
    Dtype.FLOAT_VECTOR: "float_vector_value",
}


def value_message(dtype: Dtype, value: Any) -> common_pb2.FeatureValue:
    if dtype is Dtype.INT64:
        return common_pb2.FeatureValue(int64_value=int(value))
    if dtype is Dtype.FLOAT64:
        return common_pb2.FeatureValue(float64_value=float(value))
    if dtype is Dtype.STRING:
        return common_pb2.FeatureValue(string_value=str(value))
    if dtype is Dtype.STRING_LIST:
        return common_pb2.FeatureValue(string_list_value=common_pb2.StringList(values=value))
    return common_pb2.FeatureValue(float_vector_value=common_pb2.FloatVector(values=value))


def feature_message(
    name: str, value: Any, *, age_ms: int, source: common_pb2.FeatureSource.ValueType
) -> common_pb2.Feature:
    return common_pb2.Feature(
        value=value_message(FEATURES[name].dtype, value), age_ms=age_ms, source=source
    )


def feature_value(name: str, message: common_pb2.FeatureValue) -> Any:
    """The registry value of a FeatureValue; INVALID_ARGUMENT when its kind is not the
    registry's dtype for ``name``."""
    dtype = FEATURES[name].dtype
    kind = message.WhichOneof("kind")
    if kind != _KIND[dtype]:
        raise invalid(f"feature {name} holds {kind or 'no value'}; the registry says {dtype}")
    if dtype is Dtype.STRING_LIST:
        return list(message.string_list_value.values)
    if dtype is Dtype.FLOAT_VECTOR:
        vector = list(message.float_vector_value.values)
        if not all(math.isfinite(x) for x in vector):
            raise invalid(f"feature {name} holds a NaN or an infinity")
        return vector
    value = getattr(message, kind)
    if dtype is Dtype.FLOAT64 and not math.isfinite(value):
        raise invalid(f"feature {name} is {value}: a model cannot score it")
    return value


def user_columns(features: Mapping[str, common_pb2.Feature]) -> dict[str, list[Any]]:
    """One member's registry columns (name -> [value]) from a FeatureSet's map: defaults and
    names the registry does not know are left out (vectorisation reads those as defaults)."""
    columns: dict[str, list[Any]] = {}
    for name, feature in features.items():
        if name not in FEATURES or feature.source == Source.FEATURE_SOURCE_DEFAULT:
            continue
        columns[name] = [feature_value(name, feature.value)]
    return columns
