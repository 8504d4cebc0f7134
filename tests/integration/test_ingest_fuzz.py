"""Fuzzing the ingest API in-process: random bodies and headers never get a 5xx.

Two angles: schemathesis generates requests from the app's own OpenAPI document (valid and
invalid) and checks the answers against it; hypothesis throws arbitrary bytes, JSON and mangled
events with random headers at ``POST /v1/events``. The app runs with its lifespan, so valid events
go to the real Kafka (a topic per test).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import hypothesis
import orjson
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.python.asgi import shutdown_lifespans

from recsys.catalog import EVENT_TYPES
from recsys.config import Settings
from recsys_ingest.app import create_app
from tests.ingest_support import (
    API_KEY,
    JSON_HEADERS,
    AppInThread,
    create_topic,
    delete_topic,
    event,
    ingest_settings,
)

pytestmark = pytest.mark.integration

MAX_BATCH = 50
EXPECTED = {202, 400, 401, 413, 415, 422}


@pytest.fixture
async def fuzz_topic(infra: Settings, unique: str) -> AsyncIterator[str]:
    name = f"test.fuzz.{unique}"
    await create_topic(infra, name, partitions=3)
    yield name
    await delete_topic(infra, name)


@pytest.fixture
def fuzz_app(infra: Settings, fuzz_topic: str) -> FastAPI:
    return create_app(
        ingest_settings(infra, fuzz_topic, max_batch_events=MAX_BATCH, max_body_bytes=64 * 1024)
    )


@pytest.fixture
def api_cases(fuzz_app: FastAPI) -> Iterator[st.SearchStrategy[schemathesis.Case[Any]]]:
    """Requests for every operation of the app's OpenAPI document, valid and invalid."""
    api = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    yield api.as_strategy(GenerationMode.POSITIVE) | api.as_strategy(GenerationMode.NEGATIVE)
    # schemathesis ran the app's lifespan on its own event-loop thread; stop the producer.
    shutdown_lifespans()


@given(data=st.data())
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_every_operation_conforms_to_its_openapi_document(
    api_cases: st.SearchStrategy[schemathesis.Case[Any]], data: st.DataObject
) -> None:
    case = data.draw(api_cases)
    headers = {"X-API-Key": API_KEY} if case.operation.path == "/v1/events" else None
    case.call_and_validate(
        headers=headers,
        # Partial acceptance (202 with some events rejected) and rules JSON Schema cannot state
        # (occurred_at within 1995..now+24h) make these two checks inapplicable by design.
        excluded_checks=[negative_data_rejection, positive_data_acceptance],
    )


# --- hypothesis: anything at all ----------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def mangled_events(draw: st.DrawFn) -> Any:
    """A valid event with some fields dropped, replaced by random JSON, or added."""
    body: dict[str, Any] = event(draw(st.sampled_from(EVENT_TYPES)))
    for name in draw(st.lists(st.sampled_from(sorted(body)), max_size=3, unique=True)):
        if draw(st.booleans()):
            del body[name]
        else:
            body[name] = draw(json_values)
    extra = draw(st.dictionaries(st.text(max_size=10), json_values, max_size=2))
    return (
        {**extra, **body}
        if draw(st.booleans())
        else draw(st.sampled_from([body, draw(json_values)]))
    )


def _json(value: Any) -> bytes:
    # The standard library writes what orjson refuses: huge integers, NaN and Infinity.
    return json.dumps(value).encode()


event_batches = st.lists(mangled_events(), max_size=MAX_BATCH + 5).map(
    lambda events: _json({"events": events})
)
# Half the bodies are event batches, so that most requests reach per-event validation.
bodies = st.one_of(
    event_batches,
    st.one_of(
        st.binary(max_size=300),
        json_values.map(_json),
        json_values.map(lambda events: _json({"events": events})),
        # Nesting around the limits of orjson (writes 254 levels, reads 1024).
        st.integers(min_value=200, max_value=1100).map(
            lambda depth: b'{"events": [{"x": ' + b"[" * depth + b"]" * depth + b"}]}"
        ),
    ),
)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
random_headers = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.sampled_from(
            ["application/json; charset=utf-8", "APPLICATION/JSON", "text/plain", ""]
        )
        | header_text,
        "X-API-Key": st.sampled_from([API_KEY, "", "local-dev-key", API_KEY.upper()]) | header_text,
        "Content-Length": st.integers(min_value=0, max_value=10**7).map(str),
    },
)
# Half the requests carry the right headers; the other half anything at all.
headers = st.one_of(st.just(JSON_HEADERS), random_headers)


@pytest.fixture
def client(fuzz_app: FastAPI) -> Iterator[AppInThread]:
    with AppInThread(fuzz_app) as running:  # runs the lifespan: a real producer
        yield running


@given(body=bodies, headers=headers)
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_random_requests_never_get_a_server_error(
    client: AppInThread, body: bytes, headers: dict[str, str]
) -> None:
    response = client.post("/v1/events", content=body, headers=headers)
    hypothesis.event(f"HTTP {response.status_code}")  # see --hypothesis-show-statistics
    assert response.status_code in EXPECTED, (response.status_code, response.text)
    payload = response.json()
    if response.status_code in (202, 422):
        events = orjson.loads(body)["events"]
        assert payload["accepted"] + payload["rejected"] == len(events)
        assert (payload["accepted"] > 0) == (response.status_code == 202)
        assert [r["index"] for r in payload["results"]] == list(range(len(events)))
    else:
        assert isinstance(payload["detail"], str)
