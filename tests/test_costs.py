"""Costs on spans and metrics equal hand-computed figures.

Prices used (USD per million tokens, from genai-prices 0.2.3's bundled data, which carries the
providers' published price pages):
  openai gpt-4o-mini: input 0.15, cached input 0.075, output 0.60; priority tier from 2026-10-12:
      input 0.25, cached input 0.125, output 1.00
  openai gpt-4.1: input 2.00, cached input 0.50, output 8.00
  openai text-embedding-3-small: input 0.02
  aws bedrock claude-sonnet-4-5 (regional endpoint): input 3.30
  anthropic claude-sonnet-4-5: input 3, cache read 0.30, cache write 5m 3.75, cache write 1h 6,
      output 15; above 200k input tokens: input 6, cache read 0.60, cache write 5m 7.50, 1h 12, output 22.50
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import aimon_otel
from aimon_otel import AimonInstrumentor
from aimon_otel.testing import openai_wire as wire
from tests.conftest import MESSAGES, OPENAI_HAS_RESPONSES, Telemetry

M = Decimal(1_000_000)
# The fake provider's usage: 120 input of which 40 cached, 30 output of which 10 reasoning.
UNCACHED, CACHED, OUTPUT = 80, 40, 30


def usd(tokens: int, per_million: str) -> Decimal:
    return tokens * Decimal(per_million) / M


GPT_4O_MINI = usd(UNCACHED, "0.15") + usd(CACHED, "0.075") + usd(OUTPUT, "0.60")


def test_chat_call_cost_on_span(telemetry: Telemetry, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    attributes = telemetry.span().attributes
    assert Decimal("0.000033") == GPT_4O_MINI
    assert attributes["gen_ai.usage.cost"] == float(GPT_4O_MINI)
    assert attributes["aimon.cost.input"] == float(usd(UNCACHED, "0.15"))
    assert attributes["aimon.cost.cache_read"] == float(usd(CACHED, "0.075"))
    assert attributes["aimon.cost.output"] == float(usd(OUTPUT, "0.60"))
    assert attributes["aimon.cost.cache_write"] == 0.0
    assert attributes["aimon.cost.source"] == "pricing"
    assert attributes["aimon.pricing.status"] == "priced"
    assert attributes["aimon.pricing.model"] == "gpt-4o-mini"
    # 40 cached tokens at $0.15 instead of $0.075 per million
    assert attributes["aimon.cost.cache_savings"] == float(usd(CACHED, "0.075"))
    (savings,) = telemetry.points("aimon.cost.cache_savings")
    assert savings.value == float(usd(CACHED, "0.075"))


@pytest.mark.skipif(not OPENAI_HAS_RESPONSES, reason="this openai SDK has no Responses API")
def test_responses_and_embeddings_costs(telemetry: Telemetry, client: openai.OpenAI) -> None:
    client.responses.create(model="gpt-4.1", input="hi")
    client.embeddings.create(model="text-embedding-3-small", input="hi")
    responses, embeddings = telemetry.spans()
    expected = usd(UNCACHED, "2") + usd(CACHED, "0.5") + usd(OUTPUT, "8")
    assert responses.attributes["gen_ai.usage.cost"] == float(expected)
    assert embeddings.attributes["gen_ai.usage.cost"] == float(usd(wire.EMBEDDING_TOKENS, "0.02"))


def test_stream_cost_and_cost_metric(telemetry: Telemetry, client: openai.OpenAI) -> None:
    list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert [s.attributes["gen_ai.usage.cost"] for s in telemetry.spans()] == [float(GPT_4O_MINI)] * 2
    (point,) = telemetry.points("gen_ai.usage.cost")
    assert point.count == 2 and point.sum == float(GPT_4O_MINI) + float(GPT_4O_MINI)
    assert point.explicit_bounds[0] == 1e-6 and point.explicit_bounds[-1] == 100
    assert telemetry.metric("gen_ai.usage.cost").unit == "USD"
    attributes = dict(point.attributes)
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "aimon.cost.source": "pricing",
    }


def test_cost_metric_sum_is_exact_when_sampler_drops_every_trace(client: openai.OpenAI) -> None:
    reader = InMemoryMetricReader()
    instrumentor = AimonInstrumentor()
    instrumentor.instrument(
        tracer_provider=TracerProvider(sampler=ALWAYS_OFF), meter_provider=MeterProvider(metric_readers=[reader])
    )
    try:
        for _ in range(5):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
    data = reader.get_metrics_data()
    (point,) = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "gen_ai.usage.cost"
        for p in m.data.data_points
    ]
    assert point.count == 5
    assert point.sum == sum([float(GPT_4O_MINI)] * 5)


def test_unknown_model_is_unpriced_never_zero(
    telemetry: Telemetry, client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="aimon_otel"):
        for _ in range(2):
            client.chat.completions.create(model="acme-secret-model-7", messages=MESSAGES)
    for span in telemetry.spans():
        assert "gen_ai.usage.cost" not in span.attributes
        assert span.attributes["aimon.pricing.status"] == "unknown_model"
    assert caplog.text.count("no price for model 'acme-secret-model-7'") == 1
    assert telemetry.points("gen_ai.usage.cost") == []
    (unpriced,) = telemetry.points("aimon.pricing.unpriced_calls")
    assert unpriced.value == 2
    assert unpriced.attributes["aimon.pricing.status"] == "unknown_model"


def test_provider_reported_cost_wins(telemetry: Telemetry, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers={wire.COST_HEADER: "0.00125"})
    attributes = telemetry.span().attributes
    assert attributes["gen_ai.usage.cost"] == 0.00125
    assert attributes["aimon.cost.source"] == "provider"
    assert "aimon.cost.input" not in attributes
    (point,) = telemetry.points("gen_ai.usage.cost")
    assert point.attributes["aimon.cost.source"] == "provider"


def test_failed_call_has_no_cost(telemetry: Telemetry, client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={wire.SCENARIO_HEADER: "error-429"}
        )
    attributes = telemetry.span().attributes
    assert attributes["aimon.pricing.status"] == "no_usage" and "gen_ai.usage.cost" not in attributes
    assert telemetry.points("aimon.pricing.unpriced_calls") == []


def test_anthropic_cache_writes_5m_and_1h_and_long_context_tier() -> None:
    # 5-minute and 1-hour cache writes are priced apart.
    result = aimon_otel.cost(
        "anthropic",
        "claude-sonnet-4-5",
        input_tokens=10_000,
        output_tokens=1_000,
        cache_read_tokens=2_000,
        cache_write_tokens=3_000,
        cache_write_1h_tokens=1_000,
    )
    assert result.cache_write == usd(2_000, "3.75") + usd(1_000, "6")
    assert result.input == usd(5_000, "3") and result.cache_read == usd(2_000, "0.30")
    assert result.total == usd(5_000, "3") + usd(2_000, "0.30") + usd(2_000, "3.75") + usd(1_000, "6") + usd(
        1_000, "15"
    )
    # Above 200k input tokens every token pays the long-context price.
    long = aimon_otel.cost(
        "anthropic", "claude-sonnet-4-5", input_tokens=250_000, output_tokens=1_000, cache_read_tokens=50_000
    )
    assert long.total == usd(200_000, "6") + usd(50_000, "0.60") + usd(1_000, "22.50")


def test_dated_price_and_service_tier_either_side_of_a_change() -> None:
    before = aimon_otel.cost(
        "openai", "gpt-4o-mini", 120, 30, 40, at=datetime(2026, 10, 11, 23, 59, tzinfo=UTC), service_tier="priority"
    )
    after = aimon_otel.cost(
        "openai", "gpt-4o-mini", 120, 30, 40, at=datetime(2026, 10, 12, 0, 0, tzinfo=UTC), service_tier="priority"
    )
    assert before.total == GPT_4O_MINI
    assert after.total == usd(UNCACHED, "0.25") + usd(CACHED, "0.125") + usd(OUTPUT, "1.00")


def test_providers_priced_with_their_own_tables() -> None:
    assert aimon_otel.cost("openai", "gpt-4.1", 1_000_000, 0).total == Decimal(2)
    # Bedrock's regional (non-global) endpoints for Sonnet 4.5 cost 10% more: $3.30 per million input tokens.
    bedrock = aimon_otel.cost("aws.bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", 1_000_000, 0)
    assert bedrock.provider == "aws" and bedrock.total == Decimal("3.3")
    assert aimon_otel.cost("ollama", "llama3.2", 1000, 10).status.value == "unknown_model"


def test_audio_tokens_priced_apart() -> None:
    # gpt-audio (genai-prices): text input 2.50, output 10; audio input 32, audio output 64 per million
    from aimon_otel.instrumentation.usage import Usage
    from aimon_otel.pricing import PricingEngine

    result = PricingEngine().price(
        "openai",
        "gpt-audio",
        Usage(input_tokens=1000, output_tokens=500, audio_input_tokens=400, audio_output_tokens=300),
    )
    assert result.total == usd(600, "2.5") + usd(400, "32") + usd(200, "10") + usd(300, "64")


def test_record_usage_for_an_sdk_we_do_not_patch(telemetry: Telemetry) -> None:
    with aimon_otel.attributes(tenant_id="acme"):
        result = aimon_otel.record_usage(
            provider="openai", model="gpt-4o-mini", input_tokens=120, output_tokens=30, cache_read_tokens=40
        )
    assert result.total == GPT_4O_MINI
    span = telemetry.span()
    assert span.name == "chat gpt-4o-mini"
    assert span.attributes["gen_ai.usage.cost"] == float(GPT_4O_MINI)
    assert span.attributes["tenant.id"] == "acme"
    (point,) = telemetry.points("gen_ai.usage.cost")
    assert point.sum == float(GPT_4O_MINI) and point.attributes["tenant.id"] == "acme"
