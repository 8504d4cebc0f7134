"""Request checks shared by the serving services, and the FeatureSet conversions."""

from __future__ import annotations

import grpc
import pytest

from recsys.common.v1 import common_pb2
from recsys.ranker.v1 import ranker_pb2
from recsys.serving.errors import RpcError, check_id, check_ids
from recsys.serving.features import Source, feature_message, feature_value, user_columns
from recsys_ranker.service import objective_weights


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "is empty"),
        ("a b", "malformed"),
        ("x" * 65, "malformed"),
        ("é", "malformed"),
        ("-u1", "malformed"),
    ],
)
def test_a_bad_id_is_invalid_argument_saying_why(value: str, reason: str) -> None:
    with pytest.raises(RpcError) as caught:
        check_id(value, "user_id")
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "user_id" in caught.value.message
    assert reason in caught.value.message


def test_too_many_ids_names_the_limit() -> None:
    with pytest.raises(RpcError, match="3 title_ids in one call; at most 2"):
        check_ids(["a", "b", "c"], "title_ids", limit=2)
    with pytest.raises(RpcError, match=r"title_ids\[1\]"):
        check_ids(["a", ""], "title_ids", limit=5)
    assert check_ids(["tt1", "u:2"], "title_ids", limit=2) == ["tt1", "u:2"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("session_duration_sec", 12),
        ("content_completion_rate_today", 0.75),
        ("plays_abandoned_last_1hr", 3),
        ("current_device_type", "tv"),
        ("recently_watched_title_ids", ["t1", "t2"]),
        ("genre_affinity_vector", [0.5] * 18),
    ],
)
def test_values_survive_the_message(name: str, value: object) -> None:
    message = feature_message(name, value, age_ms=5, source=Source.FEATURE_SOURCE_REDIS)
    assert message.age_ms == 5
    assert feature_value(name, message.value) == value


def test_a_value_of_the_wrong_kind_is_invalid_argument() -> None:
    wrong = common_pb2.FeatureValue(string_value="12")
    with pytest.raises(RpcError, match="session_duration_sec holds string_value"):
        feature_value("session_duration_sec", wrong)


def test_user_columns_leave_out_defaults_and_unknown_names() -> None:
    features = {
        "current_device_type": feature_message(
            "current_device_type", "tv", age_ms=1, source=Source.FEATURE_SOURCE_REDIS
        ),
        "country": feature_message("country", "", age_ms=-1, source=Source.FEATURE_SOURCE_DEFAULT),
        "no_such_feature": common_pb2.Feature(),
    }
    assert user_columns(features) == {"current_device_type": ["tv"]}


def test_objective_weights_default_when_unset_and_refuse_negatives() -> None:
    default = (1.0, 0.5, 0.5)
    assert objective_weights(ranker_pb2.RankRequest(), default) == default
    request = ranker_pb2.RankRequest(weights=common_pb2.ObjectiveWeights(play=0, complete=1))
    assert objective_weights(request, default) == (0.0, 1.0, 0.0)
    bad = ranker_pb2.RankRequest(weights=common_pb2.ObjectiveWeights(play=-1))
    with pytest.raises(RpcError, match=r"weights.play is -1.0"):
        objective_weights(bad, default)


def test_an_id_holding_a_newline_does_not_pass_as_two() -> None:
    with pytest.raises(RpcError, match=r"title_ids\[1\] 'b\\nc' is malformed"):
        check_ids(["a", "b\nc", "d"], "title_ids", limit=5)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("watch_hours_30d", common_pb2.FeatureValue(float64_value=float("nan"))),
        (
            "genre_affinity_vector",
            common_pb2.FeatureValue(
                float_vector_value=common_pb2.FloatVector(values=[0.1, float("inf")])
            ),
        ),
    ],
)
def test_a_value_no_model_can_score_is_invalid_argument(
    name: str, message: common_pb2.FeatureValue
) -> None:
    with pytest.raises(RpcError, match=f"feature {name}"):
        feature_value(name, message)
