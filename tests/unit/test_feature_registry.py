from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from recsys.features import (
    FEATURES,
    GENRE_COUNT,
    Dtype,
    Entity,
    FeatureDefinition,
    FeatureDefinitionError,
    FeatureKind,
    FeatureRegistry,
    Store,
    WindowType,
)

SEED_REALTIME = {
    "current_genre_last_30min",
    "session_duration_sec",
    "plays_abandoned_last_1hr",
    "content_completion_rate_today",
    "current_device_type",
    "search_terms_last_5min",
}
SEED_BATCH = {
    "genre_affinity_vector",
    "content_completion_rate_p50",
    "avg_session_duration_min",
    "preferred_time_of_day",
    "language_preferences",
    "country",
    "subscription_tier",
    "watch_hours_30d",
    "watch_hours_90d",
    "watch_hours_365d",
    "top_directors_30d",
}


def _good(**changes: Any) -> FeatureDefinition:
    base: dict[str, Any] = {
        "name": "plays_last_1hr",
        "entity": Entity.USER,
        "kind": FeatureKind.REALTIME,
        "dtype": Dtype.INT64,
        "window_type": WindowType.SLIDING,
        "window": timedelta(hours=1),
        "ttl": timedelta(hours=2),
        "stores": (Store.REDIS, Store.CASSANDRA),
        "default": 0,
        "description": "Plays in the last hour.",
    }
    return FeatureDefinition(**{**base, **changes})


def test_registry_holds_both_seed_tables() -> None:
    realtime = {f.name for f in FEATURES.select(kind=FeatureKind.REALTIME)}
    batch = {f.name for f in FEATURES.select(kind=FeatureKind.BATCH, entity=Entity.USER)}
    assert realtime >= SEED_REALTIME
    assert batch == SEED_BATCH


def test_seed_windows_and_stores() -> None:
    assert FEATURES["current_genre_last_30min"].window == timedelta(minutes=30)
    assert FEATURES["search_terms_last_5min"].window == timedelta(minutes=5)
    assert FEATURES["plays_abandoned_last_1hr"].window_type is WindowType.TUMBLING
    assert FEATURES["session_duration_sec"].window == timedelta(minutes=30)
    assert FEATURES["genre_affinity_vector"].dim == GENRE_COUNT == 18
    assert FEATURES["genre_affinity_vector"].default == (0.0,) * 18
    for f in FEATURES.select(kind=FeatureKind.REALTIME):
        assert Store.REDIS in f.stores
    for f in FEATURES.select(kind=FeatureKind.BATCH):
        assert f.stores == (Store.CASSANDRA,)


def test_unknown_feature_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="session_duration_sec"):
        FEATURES["no_such_feature"]


def test_valid_definition_is_accepted() -> None:
    assert _good().ttl == timedelta(hours=2)


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(FeatureDefinitionError, match="defined twice"):
        FeatureRegistry([_good(), _good(description="Same name again.")])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "Bad-Name"}, "snake_case"),
        ({"description": "  "}, "description is required"),
        ({"stores": ()}, "at least one store"),
        ({"stores": (Store.REDIS, Store.REDIS)}, "listed twice"),
        ({"ttl": timedelta(minutes=30)}, "shorter than its 1:00:00 window"),
        ({"ttl": timedelta(days=60)}, "online-store limit"),
        ({"ttl": timedelta(0)}, "ttl must be positive"),
        ({"ttl": None}, "only static features may live without a TTL"),
        ({"window": None}, "needs a positive duration"),
        ({"window_type": WindowType.EVENT_FIELD}, "window must be None"),
        ({"window_type": WindowType.LOOKBACK}, "lookback windows belong to batch"),
        ({"stores": (Store.CASSANDRA,)}, "served from Redis"),
        ({"default": "0"}, "is not a int64"),
        ({"default": True}, "is not a int64"),
        ({"dtype": Dtype.FLOAT64, "default": 1}, "is not a float64"),
        ({"dtype": Dtype.FLOAT64, "default": float("nan")}, "is not a float64"),
        ({"dtype": Dtype.STRING_LIST, "default": ["a"]}, "lists and vectors are tuples"),
        ({"dtype": Dtype.FLOAT_VECTOR, "default": (0.0,)}, "needs dim"),
        ({"dtype": Dtype.FLOAT_VECTOR, "dim": 3, "default": (0.0,)}, "default has 1 values"),
        ({"dim": 3}, "dim applies only to float_vector"),
        ({"max_items": 3}, "max_items applies only to string_list"),
        (
            {"dtype": Dtype.STRING_LIST, "max_items": 1, "default": ("a", "b")},
            "more than max_items",
        ),
        (
            {
                "window_type": WindowType.LAST_N,
                "window": None,
                "dtype": Dtype.STRING_LIST,
                "default": (),
            },
            "needs max_items",
        ),
        ({"refresh": timedelta(days=1)}, "refresh is a batch-feature setting"),
    ],
)
def test_bad_definitions_are_rejected(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(FeatureDefinitionError, match=message):
        _good(**changes)


def _batch(**changes: Any) -> FeatureDefinition:
    # dataclasses.replace re-runs validation, like a fresh declaration would.
    return replace(FEATURES["watch_hours_30d"], **changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"refresh": None}, "positive refresh cadence"),
        ({"ttl": timedelta(hours=36)}, "must cover two refresh cycles"),
        ({"stores": (Store.REDIS,)}, "stored in Cassandra"),
        ({"window_type": WindowType.SLIDING}, "lookback or static"),
    ],
)
def test_bad_batch_definitions_are_rejected(changes: dict[str, Any], message: str) -> None:
    assert _batch().name == "watch_hours_30d"
    with pytest.raises(FeatureDefinitionError, match=message):
        _batch(**changes)


def test_defaults_come_from_the_registry() -> None:
    assert FEATURES.defaults(["session_duration_sec", "current_device_type"]) == {
        "session_duration_sec": 0,
        "current_device_type": "",
    }
