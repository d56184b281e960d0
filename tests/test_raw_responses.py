"""``with_raw_response`` and ``with_streaming_response`` keep working and are traced once."""

from __future__ import annotations

import gc

import openai

from aimon_otel.testing import openai_wire as wire
from tests.conftest import MESSAGES, Telemetry


def test_raw_response(telemetry: Telemetry, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.headers["x-request-id"] == "req_fake"
    completion = raw.parse()
    assert completion is raw.parse()
    assert type(completion) is openai.types.chat.ChatCompletion
    span = telemetry.span()
    assert span.attributes["gen_ai.usage.output_tokens"] == wire.COMPLETION_TOKENS


def test_raw_response_stream(telemetry: Telemetry, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert telemetry.spans() == []
    chunks = raw.parse()
    assert isinstance(chunks, openai.Stream)
    assert all(c.choices for c in chunks)  # the usage chunk we asked for stays hidden
    span = telemetry.span()
    assert span.attributes["aimon.stream.outcome"] == "completed"
    assert span.attributes["gen_ai.usage.input_tokens"] == wire.PROMPT_TOKENS


def test_streaming_response_parsed(telemetry: Telemetry, client: openai.OpenAI) -> None:
    with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MESSAGES) as response:
        assert response.status_code == 200
        completion = response.parse()
    assert completion.usage is not None and completion.usage.total_tokens == 150
    assert telemetry.span().attributes["gen_ai.usage.input_tokens"] == wire.PROMPT_TOKENS


def test_streaming_response_read_as_lines_ends_on_close(telemetry: Telemetry, client: openai.OpenAI) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    gc.collect()
    span = telemetry.span()
    assert span.attributes["gen_ai.request.stream"] is True
    assert span.attributes["aimon.stream.outcome"] == "closed"


async def test_async_raw_and_streaming_response(telemetry: Telemetry, async_client: openai.AsyncOpenAI) -> None:
    raw = await async_client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.parse().id == "chatcmpl-fake-1"
    async with async_client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    ) as response:
        completion = await response.parse()
    assert completion.id == "chatcmpl-fake-1"
    raw_stream = await async_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    chunks = [c async for c in raw_stream.parse()]
    assert all(c.choices for c in chunks)
    spans = telemetry.spans()
    assert len(spans) == 3
    assert all(s.attributes["gen_ai.usage.input_tokens"] == wire.PROMPT_TOKENS for s in spans)
