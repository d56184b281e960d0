"""Bedrock Runtime through aiobotocore (what aioboto3 is built on): the real async client (SigV4 over
aiohttp, the AWS event-stream decoder) over real HTTP against the fake provider's Bedrock routes.

As for boto3: each operation with instrumentation off and on, the app's objects compared, tokens the
wire's, costs genai-prices' ``calc_price`` for the model id as sent.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from aimon_otel import BudgetExceeded
from aimon_otel.testing import FakeProvider
from aimon_otel.testing import bedrock_wire as wire
from aimon_otel.testing.openai_wire import SCENARIO_HEADER
from tests.conftest import Telemetry, make_telemetry

aiobotocore_session = pytest.importorskip("aiobotocore.session")
import botocore.config  # noqa: E402  (after the skip: botocore comes with aiobotocore)
import botocore.exceptions  # noqa: E402

BODY_IS_CONTEXT = hasattr(importlib.import_module("aiobotocore.response"), "AioStreamingBodyBase")
"""aiobotocore 3.x: ``async with body`` gives the body (2.x gives aiohttp's response under it)."""
MESSAGES = [{"role": "user", "content": [{"text": "Say hello"}]}]
NOVA = "us.amazon.nova-pro-v1:0"
LLAMA = "meta.llama3-1-8b-instruct-v1:0"
LLAMA_BODY = json.dumps({"prompt": "Say hello", "max_gen_len": 64})


def make_client(fake: FakeProvider, service: str = "bedrock-runtime", scenario: str | None = None) -> Any:
    """An aiobotocore client context (``async with``), as apps and aioboto3 make them."""
    session = aiobotocore_session.get_session()
    if scenario is not None:

        def add_scenario(request: Any, **_: Any) -> None:
            request.headers[SCENARIO_HEADER] = scenario

        session.register(f"before-send.{service}.*", add_scenario)
    return session.create_client(
        service,
        region_name="us-east-1",
        endpoint_url=fake.base_url,
        aws_access_key_id="AKIAFAKEFAKEFAKE",
        aws_secret_access_key="fake-secret",
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


async def both_ways(fake: FakeProvider, call: Callable[[Any], Awaitable[Any]]) -> tuple[Any, Any, Telemetry]:
    """``await call(client)`` without instrumentation, then with it (a client made after ``instrument()``)."""
    async with make_client(fake) as client:
        bare = await call(client)
    telemetry = make_telemetry()
    try:
        async with make_client(fake) as client:
            instrumented = await call(client)
    finally:
        telemetry.instrumentor.uninstrument()
    return bare, instrumented, telemetry


def plain(response: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


def attributes_of(telemetry: Telemetry) -> dict[str, Any]:
    return dict(telemetry.span().attributes or {})


def cost_of(model: str, usage: PriceUsage) -> float:
    return float(calc_price(usage, model, provider_id="aws").total_price)


async def test_converse_is_priced_as_with_boto3(fake: FakeProvider) -> None:
    async def call(client: Any) -> Any:
        return plain(await client.converse(modelId=NOVA, messages=MESSAGES, inferenceConfig={"maxTokens": 64}))

    bare, instrumented, telemetry = await both_ways(fake, call)
    assert instrumented == bare
    attributes = attributes_of(telemetry)
    assert attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert attributes["gen_ai.request.model"] == NOVA
    assert attributes["gen_ai.request.max_tokens"] == 64
    assert attributes["gen_ai.usage.output_tokens"] == wire.CONVERSE_OUTPUT
    usage = bare["usage"]
    cache_read, cache_write = usage.get("cacheReadInputTokens", 0), usage.get("cacheWriteInputTokens", 0)
    priced = PriceUsage(
        input_tokens=wire.CONVERSE_INPUT + cache_read + cache_write,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        output_tokens=wire.CONVERSE_OUTPUT,
    )
    assert attributes["gen_ai.usage.input_tokens"] == priced.input_tokens
    assert attributes["gen_ai.usage.cost"] == pytest.approx(cost_of(NOVA, priced), abs=1e-9)
    assert "aimon.api_key.id" not in attributes


async def test_converse_stream_yields_the_same_events_and_ends_once(fake: FakeProvider) -> None:
    async def call(client: Any) -> list[Any]:
        response = await client.converse_stream(modelId=NOVA, messages=MESSAGES)
        return [event async for event in response["stream"]]

    bare, instrumented, telemetry = await both_ways(fake, call)
    assert instrumented == bare and "metadata" in bare[-1]
    attributes = attributes_of(telemetry)
    assert len(telemetry.spans()) == 1
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["aimon.stream.outcome"] == "completed"
    assert attributes["gen_ai.usage.output_tokens"] == wire.CONVERSE_OUTPUT
    assert attributes["gen_ai.usage.cost"] > 0


async def test_a_stream_left_early_and_closed_ends_its_span_once(fake: FakeProvider, telemetry: Telemetry) -> None:
    async with make_client(fake) as client:
        stream = (await client.converse_stream(modelId=NOVA, messages=MESSAGES))["stream"]
        async for event in stream:
            if "contentBlockDelta" in event:
                break
        assert telemetry.spans() == []
        stream.close()  # sync, as aiobotocore's own
        stream.close()
    assert attributes_of(telemetry)["aimon.stream.outcome"] == "closed"


async def test_invoke_model_body_reads_the_same_every_way(fake: FakeProvider) -> None:
    async def call(client: Any) -> tuple[Any, ...]:
        whole = await client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)
        body = whole["body"]  # read(), then nothing left; tell() counts
        data = await body.read()
        rest, told = await body.read(), body.tell()
        first = b""
        if BODY_IS_CONTEXT:
            async with (await client.invoke_model(modelId=LLAMA, body=LLAMA_BODY))["body"] as entered:
                first = await entered.read(5)
        chunked = await client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)
        chunks = [chunk async for chunk in chunked["body"].iter_chunks(7)]
        lines = await client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)
        read_lines = [line async for line in lines["body"].iter_lines()]
        iterated = await client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)
        pieces = [piece async for piece in iterated["body"]]
        return data, rest, told, first, chunks, read_lines, pieces, plain({**whole, "body": None})

    bare, instrumented, telemetry = await both_ways(fake, call)
    assert instrumented == bare
    assert json.loads(bare[0])["generation_token_count"] == wire.INVOKE_OUTPUT
    spans = telemetry.spans()
    assert len(spans) == 4 + BODY_IS_CONTEXT
    for span in spans:
        attributes = dict(span.attributes or {})
        assert attributes["gen_ai.usage.input_tokens"] == wire.INVOKE_INPUT
        assert attributes["gen_ai.usage.output_tokens"] == wire.INVOKE_OUTPUT
        usage = PriceUsage(input_tokens=wire.INVOKE_INPUT, output_tokens=wire.INVOKE_OUTPUT)
        assert attributes["gen_ai.usage.cost"] == pytest.approx(cost_of(LLAMA, usage), abs=1e-9)


async def test_invoke_model_body_keeps_the_sdks_class(fake: FakeProvider, telemetry: Telemetry) -> None:
    async with make_client(fake) as client:
        response = await client.invoke_model(modelId=LLAMA, body=LLAMA_BODY)
        kind = type(response["body"].__wrapped__)
        assert isinstance(response["body"], kind) and kind.__module__.startswith("aiobotocore.")
        await response["body"].read()


async def test_invoke_model_streams_yield_the_same_chunks(fake: FakeProvider) -> None:
    async def call(client: Any) -> list[Any]:
        response = await client.invoke_model_with_response_stream(modelId=LLAMA, body=LLAMA_BODY)
        return [chunk async for chunk in response["body"]]

    bare, instrumented, telemetry = await both_ways(fake, call)
    assert instrumented == bare
    attributes = attributes_of(telemetry)
    assert attributes["aimon.stream.outcome"] == "completed"
    assert attributes["gen_ai.usage.input_tokens"] == wire.INVOKE_INPUT
    assert attributes["gen_ai.usage.output_tokens"] == wire.INVOKE_OUTPUT


async def test_errors_are_raised_as_before_with_the_apis_code(fake: FakeProvider) -> None:
    async def call(scenario: str | None) -> str:
        async with make_client(fake, scenario=scenario) as client:
            with pytest.raises(botocore.exceptions.ClientError) as raised:
                await client.converse(modelId=NOVA, messages=MESSAGES)
        return str(raised.value)

    bare = await call("aws-throttled")
    telemetry = make_telemetry()
    try:
        instrumented = await call("aws-throttled")
    finally:
        telemetry.instrumentor.uninstrument()
    assert instrumented == bare and "ThrottlingException" in bare
    assert attributes_of(telemetry)["error.type"] == "ThrottlingException"


async def test_a_block_budget_refuses_before_sending(fake: FakeProvider, tmp_path: Path) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "budgets:\n  - {name: cut-off, match: {provider: aws.bedrock}, limit_usd: 0, period: day, action: block}\n"
    )
    telemetry = make_telemetry(budgets=str(budgets))
    try:
        sent = len(fake.requests)
        async with make_client(fake) as client:
            with pytest.raises(BudgetExceeded):
                await client.converse(modelId=NOVA, messages=MESSAGES)
            with pytest.raises(BudgetExceeded):
                await client.converse_stream(modelId=NOVA, messages=MESSAGES)
        assert len(fake.requests) == sent
    finally:
        telemetry.instrumentor.uninstrument()


async def test_other_services_are_untouched_and_uninstrument_restores(fake: FakeProvider) -> None:
    telemetry = make_telemetry()
    try:
        async with make_client(fake, service="s3") as s3, make_client(fake) as bedrock:
            assert not any(hasattr(getattr(type(s3), name, None), "__wrapped__") for name in ("list_buckets",))
            assert hasattr(type(bedrock).__dict__["converse"], "__wrapped__")
            client_class = type(bedrock)
    finally:
        telemetry.instrumentor.uninstrument()
    assert not hasattr(client_class.__dict__["converse"], "__wrapped__")
    async with make_client(fake) as client:
        await client.converse(modelId=NOVA, messages=MESSAGES)
    assert telemetry.spans() == []


async def test_an_existing_client_is_covered_again_on_reinstrument(fake: FakeProvider) -> None:
    first = make_telemetry()
    async with make_client(fake) as client:
        first.instrumentor.uninstrument()
        second = make_telemetry()
        try:
            await client.converse(modelId=NOVA, messages=MESSAGES)
        finally:
            second.instrumentor.uninstrument()
    assert len(second.spans()) == 1
