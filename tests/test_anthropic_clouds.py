"""``AnthropicBedrock`` and ``AnthropicVertex`` end to end: real SDK, real HTTP, the clouds' own URL shapes.

Bedrock answers on ``/model/{id}/invoke`` and streams AWS event-stream frames (decoded by botocore in
the SDK); Vertex on ``:rawPredict`` / ``:streamRawPredict``. Both clients' ``beta.messages`` classes
copy the first-party methods at import, so they are wrapped where they live. Costs are compared with
genai-prices' own ``calc_price`` for the cloud's price entry.
"""

from __future__ import annotations

import importlib.util
from decimal import Decimal
from typing import Any

import anthropic
import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from aimon_otel.testing import FakeProvider
from aimon_otel.testing import anthropic_wire as wire
from tests.conftest import Telemetry

MESSAGES = [{"role": "user", "content": "Say hello"}]
BEDROCK_MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
VERTEX_MODEL = "claude-haiku-4-5@20251001"
HAS_NATIVE_TRACING = importlib.util.find_spec("anthropic._tracing") is not None
PRICE_USAGE = PriceUsage(
    input_tokens=wire.INPUT_TOKENS + wire.CACHE_READ_TOKENS + wire.CACHE_WRITE_TOKENS,
    cache_read_tokens=wire.CACHE_READ_TOKENS,
    cache_write_tokens=wire.CACHE_WRITE_TOKENS,
    cache_write_5m_tokens=wire.CACHE_WRITE_5M_TOKENS,
    cache_write_1h_tokens=wire.CACHE_WRITE_1H_TOKENS,
    output_tokens=wire.OUTPUT_TOKENS,
)


def expected_cost(model: str, provider_id: str) -> float:
    return float(calc_price(PRICE_USAGE, model, provider_id=provider_id).total_price)


@pytest.fixture(
    params=[
        "sdk-tracing-off",
        pytest.param("sdk-tracing-on", marks=pytest.mark.skipif(not HAS_NATIVE_TRACING, reason="anthropic < 2")),
    ]
)
def tracing(request: pytest.FixtureRequest, telemetry: Telemetry) -> dict[str, Any]:
    """The client's ``open_telemetry`` option: every test runs with anthropic 2.x's own tracing off and on
    (then the SDK's span is the call's and must carry our figures)."""
    if not HAS_NATIVE_TRACING:
        return {}
    on = request.param == "sdk-tracing-on"
    return {"open_telemetry": {"tracer_provider": telemetry.tracer_provider} if on else False}


def bedrock(fake: FakeProvider, tracing: dict[str, Any], client_type: type = anthropic.AnthropicBedrock) -> Any:
    pytest.importorskip("botocore")
    return client_type(
        aws_region="us-east-1",
        aws_access_key="AKIAFAKEFAKEFAKE",
        aws_secret_key="fake-secret",
        base_url=fake.base_url,
        max_retries=0,
        **tracing,
    )


def vertex(fake: FakeProvider, tracing: dict[str, Any], client_type: type = anthropic.AnthropicVertex) -> Any:
    return client_type(
        region="us-east5",
        project_id="proj",
        access_token="ya29.fake-token",
        base_url=f"{fake.base_url}/v1",
        max_retries=0,
        **tracing,
    )


def check_span(telemetry: Telemetry, provider: str, model: str, price_provider: str, stream: bool) -> None:
    span = telemetry.span()
    attributes = span.attributes or {}
    assert attributes["gen_ai.provider.name"] == provider
    assert attributes["gen_ai.request.model"] == model
    assert attributes["gen_ai.request.stream"] is stream
    assert attributes["gen_ai.usage.input_tokens"] == PRICE_USAGE.input_tokens
    assert attributes["gen_ai.usage.output_tokens"] == wire.OUTPUT_TOKENS
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == wire.CACHE_READ_TOKENS
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == wire.CACHE_WRITE_TOKENS
    assert attributes["gen_ai.usage.cost"] == pytest.approx(expected_cost(model, price_provider), abs=1e-9)
    assert attributes["aimon.pricing.status"] == "priced"


@pytest.mark.parametrize("surface", ["messages", "beta.messages"])
def test_bedrock_message(telemetry: Telemetry, fake: FakeProvider, surface: str, tracing: dict[str, Any]) -> None:
    client = bedrock(fake, tracing)
    api = client.beta.messages if surface == "beta.messages" else client.messages
    message = api.create(model=BEDROCK_MODEL, max_tokens=100, messages=MESSAGES)
    assert message.content[0].text == wire.REPLY_TEXT
    check_span(telemetry, "aws.bedrock", BEDROCK_MODEL, "aws", stream=False)


@pytest.mark.parametrize("surface", ["messages", "beta.messages"])
def test_bedrock_event_stream(telemetry: Telemetry, fake: FakeProvider, surface: str, tracing: dict[str, Any]) -> None:
    client = bedrock(fake, tracing)
    api = client.beta.messages if surface == "beta.messages" else client.messages
    events = list(api.create(model=BEDROCK_MODEL, max_tokens=100, messages=MESSAGES, stream=True))
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == wire.REPLY_TEXT
    check_span(telemetry, "aws.bedrock", BEDROCK_MODEL, "aws", stream=True)


@pytest.mark.parametrize("surface", ["messages", "beta.messages"])
async def test_bedrock_async(telemetry: Telemetry, fake: FakeProvider, surface: str, tracing: dict[str, Any]) -> None:
    client = bedrock(fake, tracing, anthropic.AsyncAnthropicBedrock)
    api = client.beta.messages if surface == "beta.messages" else client.messages
    message = await api.create(model=BEDROCK_MODEL, max_tokens=100, messages=MESSAGES)
    assert message.usage.output_tokens == wire.OUTPUT_TOKENS
    check_span(telemetry, "aws.bedrock", BEDROCK_MODEL, "aws", stream=False)


@pytest.mark.parametrize("surface", ["messages", "beta.messages"])
def test_vertex_message_and_stream(
    telemetry: Telemetry, fake: FakeProvider, surface: str, tracing: dict[str, Any]
) -> None:
    client = vertex(fake, tracing)
    api = client.beta.messages if surface == "beta.messages" else client.messages
    api.create(model=VERTEX_MODEL, max_tokens=100, messages=MESSAGES)
    check_span(telemetry, "gcp.vertex_ai", VERTEX_MODEL, "google", stream=False)
    telemetry.exporter.clear()
    if hasattr(api, "stream"):
        with api.stream(model=VERTEX_MODEL, max_tokens=100, messages=MESSAGES) as stream:
            assert "".join(stream.text_stream) == wire.REPLY_TEXT
    else:  # anthropic < 0.50's Vertex beta has no stream helper
        events = api.create(model=VERTEX_MODEL, max_tokens=100, messages=MESSAGES, stream=True)
        assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == wire.REPLY_TEXT
    check_span(telemetry, "gcp.vertex_ai", VERTEX_MODEL, "google", stream=True)


@pytest.mark.parametrize("surface", ["messages", "beta.messages"])
async def test_vertex_async(telemetry: Telemetry, fake: FakeProvider, surface: str, tracing: dict[str, Any]) -> None:
    client = vertex(fake, tracing, anthropic.AsyncAnthropicVertex)
    api = client.beta.messages if surface == "beta.messages" else client.messages
    await api.create(model=VERTEX_MODEL, max_tokens=100, messages=MESSAGES)
    check_span(telemetry, "gcp.vertex_ai", VERTEX_MODEL, "google", stream=False)


def test_cloud_beta_methods_are_restored(fake: FakeProvider) -> None:
    from tests.conftest import make_telemetry

    bedrock_beta = pytest.importorskip("anthropic.lib.bedrock._beta_messages")
    original = bedrock_beta.Messages.__dict__["create"]
    made = make_telemetry()
    assert bedrock_beta.Messages.__dict__["create"] is not original
    made.instrumentor.uninstrument()
    assert bedrock_beta.Messages.__dict__["create"] is original


def test_bedrock_price_is_the_cloud_price() -> None:
    """Guards the test's premise: Bedrock's price entry differs from Anthropic's own."""
    first_party = calc_price(PRICE_USAGE, "claude-haiku-4-5", provider_id="anthropic").total_price
    assert Decimal(str(expected_cost(BEDROCK_MODEL, "aws"))) != first_party
