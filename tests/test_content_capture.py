"""Prompts and replies are recorded only on opt-in, in the conventions' shape, cut to size."""

from __future__ import annotations

import json

import openai
import pytest

from aimon_otel import AimonConfigError, Settings
from aimon_otel.testing import openai_wire as wire
from tests.conftest import MESSAGES, OPENAI_HAS_RESPONSES, Telemetry, make_telemetry


def test_off_by_default(telemetry: Telemetry, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    attributes = telemetry.span().attributes
    assert "gen_ai.input.messages" not in attributes
    assert "gen_ai.output.messages" not in attributes
    assert wire.REPLY_TEXT not in telemetry.span().to_json()


def test_chat_content_when_enabled_by_env(monkeypatch: pytest.MonkeyPatch, client: openai.OpenAI) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    telemetry = make_telemetry()
    try:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "system", "content": "Be brief"}, *MESSAGES]
        )
        list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    finally:
        telemetry.instrumentor.uninstrument()
    plain, streamed = telemetry.spans()
    assert json.loads(plain.attributes["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "Say hello"}]},
    ]
    expected_output = [
        {"role": "assistant", "parts": [{"type": "text", "content": wire.REPLY_TEXT}], "finish_reason": "stop"}
    ]
    assert json.loads(plain.attributes["gen_ai.output.messages"]) == expected_output
    assert json.loads(streamed.attributes["gen_ai.output.messages"]) == expected_output


@pytest.mark.skipif(not OPENAI_HAS_RESPONSES, reason="this openai SDK has no Responses API")
def test_responses_content(client: openai.OpenAI) -> None:
    telemetry = make_telemetry(capture_content=True)
    try:
        client.responses.create(model="gpt-4.1", instructions="Be brief", input="Say hello")
    finally:
        telemetry.instrumentor.uninstrument()
    attributes = telemetry.span().attributes
    assert json.loads(attributes["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief"}]
    assert json.loads(attributes["gen_ai.input.messages"])[0]["parts"][0]["content"] == "Say hello"
    assert json.loads(attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == wire.REPLY_TEXT


def test_size_cap(client: openai.OpenAI) -> None:
    telemetry = make_telemetry(capture_content=True, content_max_chars=10)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 5000}])
    finally:
        telemetry.instrumentor.uninstrument()
    (message,) = json.loads(telemetry.span().attributes["gen_ai.input.messages"])
    assert message["parts"][0]["content"] == "x" * 10 + "…[truncated 4990 chars]"


@pytest.mark.parametrize(
    ("env", "value", "fragment"),
    [
        ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "maybe", "SPAN_ONLY, SPAN_AND_EVENT, EVENT_ONLY"),
        ("AIMON_CAPTURE_CONTENT_MAX_CHARS", "-3", "positive whole number"),
    ],
)
def test_bad_setting_names_the_variable_and_fix(env: str, value: str, fragment: str) -> None:
    with pytest.raises(AimonConfigError) as info:
        Settings.load({env: value}, strict=True)
    assert env in str(info.value) and repr(value) in str(info.value) and fragment in str(info.value)


def test_unknown_setting_in_code_is_an_error() -> None:
    with pytest.raises(AimonConfigError, match="capture_contnet"):
        Settings.load({}, capture_contnet=True)
