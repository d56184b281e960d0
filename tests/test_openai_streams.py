"""Stream proxies: the span ends exactly once however the stream ends, and the caller sees
exactly the chunks it would have seen without instrumentation."""

from __future__ import annotations

import gc
from typing import Any

import openai
import pytest
from opentelemetry.trace import StatusCode

from aimon_otel.testing import FakeProvider
from aimon_otel.testing import openai_wire as wire
from tests.conftest import API_KEY, MESSAGES, Telemetry, make_telemetry


def stream(client: openai.OpenAI, **extra: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True, **extra)


def outcome(telemetry: Telemetry) -> Any:
    return telemetry.span().attributes["aimon.stream.outcome"]  # type: ignore[index]


def test_exhausted(telemetry: Telemetry, client: openai.OpenAI) -> None:
    for _ in stream(client):
        pass
    assert outcome(telemetry) == "completed"


def test_closed_early_keeps_what_was_seen(telemetry: Telemetry, client: openai.OpenAI) -> None:
    chunks = stream(client)
    next(chunks)
    assert telemetry.spans() == []
    chunks.close()
    span = telemetry.span()
    assert span.attributes["aimon.stream.outcome"] == "closed"
    assert span.attributes["gen_ai.response.id"] == "chatcmpl-fake-1"
    assert "gen_ai.usage.input_tokens" not in span.attributes
    chunks.close()
    assert len(telemetry.spans()) == 1


def test_context_manager(telemetry: Telemetry, client: openai.OpenAI) -> None:
    with stream(client) as chunks:
        assert isinstance(chunks, openai.Stream)
        next(chunks)
    assert outcome(telemetry) == "closed"


def test_break_then_collected_is_abandoned(telemetry: Telemetry, client: openai.OpenAI) -> None:
    chunks = stream(client)
    for _ in chunks:
        break
    assert telemetry.spans() == []
    del chunks
    gc.collect()
    assert outcome(telemetry) == "abandoned"


def test_never_iterated_and_collected_is_abandoned(telemetry: Telemetry, client: openai.OpenAI) -> None:
    stream(client)
    gc.collect()
    span = telemetry.span()
    assert span.attributes["aimon.stream.outcome"] == "abandoned"


def test_error_mid_stream(telemetry: Telemetry, client: openai.OpenAI) -> None:
    chunks = stream(client, extra_headers={wire.SCENARIO_HEADER: "stream-error"})
    with pytest.raises(openai.APIError, match="mid-stream"):
        for _ in chunks:
            pass
    span = telemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "APIError"
    assert span.attributes["aimon.stream.outcome"] == "error"
    (duration,) = telemetry.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == "APIError"


async def test_async_lifecycles(telemetry: Telemetry, async_client: openai.AsyncOpenAI) -> None:
    async def open_stream(**extra: Any) -> Any:
        return await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True, **extra)

    exhausted = await open_stream()
    async for _ in exhausted:
        pass
    closed = await open_stream()
    await closed.__anext__()
    await closed.close()
    async with await open_stream() as managed:
        assert isinstance(managed, openai.AsyncStream)
        await managed.__anext__()
    failing = await open_stream(extra_headers={wire.SCENARIO_HEADER: "stream-error"})
    with pytest.raises(openai.APIError):
        async for _ in failing:
            pass
    abandoned = await open_stream()
    del abandoned
    gc.collect()
    outcomes = [s.attributes["aimon.stream.outcome"] for s in telemetry.spans()]
    assert outcomes == ["completed", "closed", "closed", "error", "abandoned"]


def test_each_span_ends_once(telemetry: Telemetry, client: openai.OpenAI, caplog: pytest.LogCaptureFixture) -> None:
    with stream(client) as chunks:
        for _ in chunks:
            pass
        chunks.close()
    gc.collect()
    assert outcome(telemetry) == "completed"
    assert "ended span" not in caplog.text


def chunk_dumps(chunks: Any) -> list[dict[str, Any]]:
    return [c.model_dump() for c in chunks]


@pytest.mark.parametrize("ask_usage", [False, True])
def test_usage_chunk_request_is_invisible_to_the_caller(
    ask_usage: bool, fake: FakeProvider, client: openai.OpenAI
) -> None:
    extra = {"stream_options": {"include_usage": True}} if ask_usage else {}
    bare = chunk_dumps(stream(client, **extra))
    telemetry = make_telemetry()
    try:
        sent_before = len(fake.requests)
        instrumented = chunk_dumps(stream(client, **extra))
        assert fake.requests[sent_before].body["stream_options"] == {"include_usage": True}
    finally:
        telemetry.instrumentor.uninstrument()
    assert instrumented == bare
    assert (bare[-1]["usage"] is not None) is ask_usage
    assert telemetry.span().attributes["gen_ai.usage.input_tokens"] == wire.PROMPT_TOKENS


def test_usage_request_can_be_turned_off(fake: FakeProvider, client: openai.OpenAI) -> None:
    telemetry = make_telemetry(openai_stream_usage=False)
    try:
        list(stream(client))
        assert "stream_options" not in fake.requests[-1].body
    finally:
        telemetry.instrumentor.uninstrument()
    assert "gen_ai.usage.input_tokens" not in telemetry.span().attributes


def test_endpoint_rejecting_stream_options_is_retried_once_then_remembered(telemetry: Telemetry) -> None:
    with FakeProvider(reject_stream_options=True) as strict:
        client = openai.OpenAI(base_url=strict.openai_base_url, api_key=API_KEY, max_retries=0)
        first = chunk_dumps(stream(client))
        assert [("stream_options" in r.body) for r in strict.requests] == [True, False]
        second = chunk_dumps(stream(client))
        assert [("stream_options" in r.body) for r in strict.requests] == [True, False, False]
        with pytest.raises(openai.BadRequestError):  # the caller's own option is still the caller's
            list(stream(client, stream_options={"include_usage": True}))
    assert first == second and first[-1]["choices"][0]["finish_reason"] == "stop"
    spans = telemetry.spans()
    assert len(spans) == 3
    assert [s.status.status_code for s in spans] == [StatusCode.UNSET, StatusCode.UNSET, StatusCode.ERROR]
    assert [s.attributes.get("aimon.stream.outcome") for s in spans[:2]] == ["completed", "completed"]
    assert spans[0].attributes["gen_ai.response.finish_reasons"] == ("stop",)


def test_an_unrelated_400_is_not_sent_twice(telemetry: Telemetry, fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)
    before = len(fake.requests)
    with pytest.raises(openai.BadRequestError):
        list(stream(client, extra_headers={wire.SCENARIO_HEADER: "error-400"}))
    assert len(fake.requests) == before + 1  # the caller's bad request went out once, as without us
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True).close()
    assert "stream_options" in fake.requests[-1].body  # and the usage request was not given up on
