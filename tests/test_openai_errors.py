"""Errors and retries: the SDK's exceptions unchanged, one span per call, keys never recorded."""

from __future__ import annotations

import json
import logging
from typing import Any

import openai
import pytest
from opentelemetry.trace import StatusCode

from aimon_otel.testing import FakeProvider
from aimon_otel.testing import openai_wire as wire
from tests.conftest import API_KEY, MESSAGES, Telemetry, make_telemetry


def call(client: openai.OpenAI, scenario: str) -> Any:
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={wire.SCENARIO_HEADER: scenario}
    )


def raised(client: openai.OpenAI, scenario: str) -> BaseException:
    with pytest.raises(openai.APIError) as info:
        call(client, scenario)
    return info.value


@pytest.mark.parametrize(
    ("scenario", "error_class", "status"),
    [
        ("error-400", openai.BadRequestError, 400),
        ("error-429", openai.RateLimitError, 429),
        ("error-500", openai.InternalServerError, 500),
    ],
)
def test_error_status_gives_error_span_and_same_exception(
    scenario: str, error_class: type[Exception], status: int, client: openai.OpenAI
) -> None:
    bare = raised(client, scenario)
    telemetry = make_telemetry()
    try:
        instrumented = raised(client, scenario)
    finally:
        telemetry.instrumentor.uninstrument()
    assert type(instrumented) is type(bare) is error_class
    assert str(instrumented) == str(bare)
    assert instrumented.status_code == status  # type: ignore[attr-defined]
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == error_class.__name__
    (duration,) = telemetry.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == error_class.__name__
    assert telemetry.points("gen_ai.client.token.usage") == []


def test_retries_are_inside_one_span(telemetry: Telemetry, fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=2)
    before = len(fake.requests)
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        extra_headers={wire.SCENARIO_HEADER: "fail-once-500", wire.CALL_ID_HEADER: "retry-test"},
    )
    assert completion.choices[0].message.content == wire.REPLY_TEXT
    assert len(fake.requests) - before == 2
    span = telemetry.span()
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes["gen_ai.usage.input_tokens"] == wire.PROMPT_TOKENS


def test_exhausted_retries_give_one_error_span(telemetry: Telemetry, fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=2)
    before = len(fake.requests)
    with pytest.raises(openai.RateLimitError):
        call(client, "error-429")
    assert len(fake.requests) - before == 3
    assert telemetry.span().attributes["error.type"] == "RateLimitError"


def test_connection_error_propagates(telemetry: Telemetry) -> None:
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key=API_KEY, max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert telemetry.span().attributes["error.type"] == "APIConnectionError"


def everything_exported(telemetry: Telemetry) -> str:
    parts = [span.to_json() for span in telemetry.spans()]
    data = telemetry.reader.get_metrics_data()
    parts.append(data.to_json() if data else "")
    return "\n".join(parts)


@pytest.mark.parametrize("capture", [False, True])
def test_api_key_never_reaches_telemetry(capture: bool, fake: FakeProvider, caplog: pytest.LogCaptureFixture) -> None:
    telemetry = make_telemetry(capture_content=capture)
    caplog.set_level(logging.DEBUG)
    client = openai.OpenAI(
        base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0, default_headers={"x-api-key": API_KEY}
    )
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
        with pytest.raises(openai.AuthenticationError) as info:
            call(client, "error-401-echo-key")
        assert API_KEY in str(info.value)  # the provider echoed it: the app still sees it
    finally:
        telemetry.instrumentor.uninstrument()
    exported = everything_exported(telemetry)
    assert len(telemetry.spans()) == 3
    assert API_KEY not in exported and "SECRET" not in exported
    assert API_KEY not in caplog.text
    error_span = telemetry.spans()[-1]
    assert "[REDACTED]" in (error_span.status.description or "")
    assert json.loads(error_span.to_json())["attributes"]["error.type"] == "AuthenticationError"
