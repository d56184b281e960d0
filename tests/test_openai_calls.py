"""Every wrapped OpenAI method, sync and async: one CLIENT span with the contract's attributes."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

from aimon_otel.testing import openai_wire as wire
from tests.conftest import MESSAGES, OPENAI_HAS_RESPONSES, Telemetry

FULL_USAGE = {
    "gen_ai.usage.input_tokens": wire.PROMPT_TOKENS,
    "gen_ai.usage.output_tokens": wire.COMPLETION_TOKENS,
    "gen_ai.usage.cache_read.input_tokens": wire.CACHED_TOKENS,
    "gen_ai.usage.reasoning.output_tokens": wire.REASONING_TOKENS,
}


class Answer(BaseModel):
    answer: str


def chat_parser(client: Any) -> Any:
    """``chat.completions.parse`` moved out of ``beta`` in later 1.x releases."""
    completions = client.chat.completions
    return completions if hasattr(completions, "parse") else client.beta.chat.completions


def sync_calls() -> dict[str, Any]:
    calls: dict[str, Any] = {
        "chat": lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
        "chat_stream": lambda c: list(c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)),
        "chat_parse": lambda c: chat_parser(c).parse(model="gpt-4o-mini", messages=MESSAGES, response_format=Answer),
        "embeddings": lambda c: c.embeddings.create(model="text-embedding-3-small", input="hello"),
        "completions": lambda c: c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello"),
        "completions_stream": lambda c: list(
            c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello", stream=True)
        ),
    }
    if OPENAI_HAS_RESPONSES:
        calls["responses"] = lambda c: c.responses.create(model="gpt-4.1", input="Say hello")
        calls["responses_stream"] = lambda c: list(c.responses.create(model="gpt-4.1", input="Say hello", stream=True))
        calls["responses_parse"] = lambda c: c.responses.parse(model="gpt-4.1", input="Say hello", text_format=Answer)

        def responses_stream_helper(c: Any) -> Any:
            with c.responses.stream(model="gpt-4.1", input="Say hello") as stream:
                for _ in stream:
                    pass
                return stream.get_final_response()

        calls["responses_stream_helper"] = responses_stream_helper

    def chat_stream_helper(c: Any) -> Any:
        with chat_parser(c).stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
            for _ in stream:
                pass
            return stream.get_final_completion()

    calls["chat_stream_helper"] = chat_stream_helper
    return calls


EXPECTED: dict[str, dict[str, Any]] = {
    "chat": {
        "name": "chat gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "stream": False,
        "usage": FULL_USAGE,
    },
    "chat_stream": {
        "name": "chat gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "stream": True,
        "usage": FULL_USAGE,
    },
    "chat_stream_helper": {
        "name": "chat gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "stream": True,
        "usage": FULL_USAGE,
    },
    "chat_parse": {
        "name": "chat gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "stream": False,
        "usage": FULL_USAGE,
    },
    "embeddings": {
        "name": "embeddings text-embedding-3-small",
        "gen_ai.response.model": "text-embedding-3-small",
        "stream": None,
        "usage": {"gen_ai.usage.input_tokens": wire.EMBEDDING_TOKENS},
    },
    "completions": {
        "name": "text_completion gpt-3.5-turbo-instruct",
        "gen_ai.response.model": "gpt-3.5-turbo-instruct",
        "stream": False,
        "usage": FULL_USAGE,
    },
    "completions_stream": {
        "name": "text_completion gpt-3.5-turbo-instruct",
        "gen_ai.response.model": "gpt-3.5-turbo-instruct",
        "stream": True,
        "usage": FULL_USAGE,
    },
    "responses": {
        "name": "chat gpt-4.1",
        "gen_ai.response.model": "gpt-4.1-2025-04-14",
        "stream": False,
        "usage": FULL_USAGE,
    },
    "responses_stream": {
        "name": "chat gpt-4.1",
        "gen_ai.response.model": "gpt-4.1-2025-04-14",
        "stream": True,
        "usage": FULL_USAGE,
    },
    "responses_stream_helper": {
        "name": "chat gpt-4.1",
        "gen_ai.response.model": "gpt-4.1-2025-04-14",
        "stream": True,
        "usage": FULL_USAGE,
    },
    "responses_parse": {
        "name": "chat gpt-4.1",
        "gen_ai.response.model": "gpt-4.1-2025-04-14",
        "stream": False,
        "usage": FULL_USAGE,
    },
}


async def _drain(stream: Any) -> list[Any]:
    return [item async for item in stream]


def async_calls() -> dict[str, Any]:
    async def chat(c: Any) -> Any:
        return await c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    async def chat_stream(c: Any) -> Any:
        return await _drain(await c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))

    async def chat_parse(c: Any) -> Any:
        return await chat_parser(c).parse(model="gpt-4o-mini", messages=MESSAGES, response_format=Answer)

    async def chat_stream_helper(c: Any) -> Any:
        async with chat_parser(c).stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
            async for _ in stream:
                pass
            return await stream.get_final_completion()

    async def embeddings(c: Any) -> Any:
        return await c.embeddings.create(model="text-embedding-3-small", input="hello")

    async def completions(c: Any) -> Any:
        return await c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello")

    async def completions_stream(c: Any) -> Any:
        return await _drain(await c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello", stream=True))

    calls: dict[str, Any] = {
        "chat": chat,
        "chat_stream": chat_stream,
        "chat_parse": chat_parse,
        "chat_stream_helper": chat_stream_helper,
        "embeddings": embeddings,
        "completions": completions,
        "completions_stream": completions_stream,
    }
    if OPENAI_HAS_RESPONSES:

        async def responses(c: Any) -> Any:
            return await c.responses.create(model="gpt-4.1", input="Say hello")

        async def responses_stream(c: Any) -> Any:
            return await _drain(await c.responses.create(model="gpt-4.1", input="Say hello", stream=True))

        async def responses_parse(c: Any) -> Any:
            return await c.responses.parse(model="gpt-4.1", input="Say hello", text_format=Answer)

        async def responses_stream_helper(c: Any) -> Any:
            async with c.responses.stream(model="gpt-4.1", input="Say hello") as stream:
                async for _ in stream:
                    pass
                return await stream.get_final_response()

        calls.update(
            responses=responses,
            responses_stream=responses_stream,
            responses_parse=responses_parse,
            responses_stream_helper=responses_stream_helper,
        )
    return calls


def check_span(telemetry: Telemetry, kind: str, port: int) -> None:
    expected = EXPECTED[kind]
    span = telemetry.span()
    attributes = dict(span.attributes or {})
    assert span.name == expected["name"]
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.operation.name"] == expected["name"].split(" ")[0]
    assert attributes["gen_ai.request.model"] == expected["name"].split(" ")[1]
    assert attributes["gen_ai.response.model"] == expected["gen_ai.response.model"]
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == port
    assert attributes.get("gen_ai.request.stream") == expected["stream"]
    for name, value in expected["usage"].items():
        assert attributes[name] == value, name
    if kind != "embeddings":
        assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
        assert str(attributes["gen_ai.response.id"]).startswith(("chatcmpl-", "cmpl-", "resp_"))
    else:
        assert attributes["gen_ai.embeddings.dimension.count"] == wire.EMBEDDING_DIMENSIONS
    if expected["stream"]:
        assert attributes["aimon.stream.outcome"] == "completed"
        assert float(attributes["gen_ai.response.time_to_first_chunk"]) > 0  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", sorted(sync_calls()))
def test_sync_method_gives_one_span(kind: str, telemetry: Telemetry, client: openai.OpenAI, fake: Any) -> None:
    result = sync_calls()[kind](client)
    assert result is not None
    check_span(telemetry, kind, fake.port)


@pytest.mark.parametrize("kind", sorted(async_calls()))
async def test_async_method_gives_one_span(
    kind: str, telemetry: Telemetry, async_client: openai.AsyncOpenAI, fake: Any
) -> None:
    result = await async_calls()[kind](async_client)
    assert result is not None
    check_span(telemetry, kind, fake.port)


def test_results_are_the_sdks_own_objects(telemetry: Telemetry, client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert type(completion) is openai.types.chat.ChatCompletion
    assert completion.choices[0].message.content == wire.REPLY_TEXT
    parsed = chat_parser(client).parse(model="gpt-4o-mini", messages=MESSAGES, response_format=Answer)
    assert parsed.choices[0].message.parsed == Answer(answer="fake")
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.Stream)
    assert stream.response.status_code == 200
    stream.close()


def test_metrics_token_usage_and_duration(telemetry: Telemetry, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    tokens = {p.attributes["gen_ai.token.type"]: p for p in telemetry.points("gen_ai.client.token.usage")}
    assert set(tokens) == {"input", "output"}  # as the conventions define it: sums over it are right
    parts = {p.attributes["aimon.token.type"]: p.value for p in telemetry.points("aimon.usage.tokens")}
    assert parts == {"cache_read": 2 * wire.CACHED_TOKENS, "reasoning": 2 * wire.REASONING_TOKENS}
    assert tokens["input"].sum == 2 * wire.PROMPT_TOKENS and tokens["input"].count == 2
    assert tokens["output"].sum == 2 * wire.COMPLETION_TOKENS
    assert list(tokens["input"].explicit_bounds) == [
        1,
        4,
        16,
        64,
        256,
        1024,
        4096,
        16384,
        65536,
        262144,
        1048576,
        4194304,
        16777216,
        67108864,
    ]
    attributes = dict(tokens["input"].attributes)
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.operation.name"] == "chat"
    (duration,) = telemetry.points("gen_ai.client.operation.duration")
    assert duration.count == 2 and duration.sum > 0
    assert list(duration.explicit_bounds) == [
        0.01,
        0.02,
        0.04,
        0.08,
        0.16,
        0.32,
        0.64,
        1.28,
        2.56,
        5.12,
        10.24,
        20.48,
        40.96,
        81.92,
    ]
    assert telemetry.metric("gen_ai.client.token.usage").unit == "{token}"
    assert telemetry.metric("gen_ai.client.operation.duration").unit == "s"
    assert telemetry.points("gen_ai.client.operation.time_to_first_chunk") == []


def test_time_to_first_chunk_metric_for_streams(telemetry: Telemetry, client: openai.OpenAI) -> None:
    list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    (point,) = telemetry.points("gen_ai.client.operation.time_to_first_chunk")
    assert point.count == 1
    (duration,) = telemetry.points("gen_ai.client.operation.duration")
    assert 0 < point.sum <= duration.sum


def test_metrics_survive_a_sampler_that_drops_every_trace(client: openai.OpenAI) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    from aimon_otel import AimonInstrumentor

    reader = InMemoryMetricReader()
    instrumentor = AimonInstrumentor()
    instrumentor.instrument(
        tracer_provider=TracerProvider(sampler=ALWAYS_OFF), meter_provider=MeterProvider(metric_readers=[reader])
    )
    try:
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
    data = reader.get_metrics_data()
    sums = {
        point.attributes["gen_ai.token.type"]: point.sum
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "gen_ai.client.token.usage"
        for point in m.data.data_points
    }
    assert sums == {"input": 3 * wire.PROMPT_TOKENS, "output": 3 * wire.COMPLETION_TOKENS}
