"""Foreign GenAI spans (another instrumentation's) are priced and attributed on export."""

from __future__ import annotations

from decimal import Decimal

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import aimon_otel
from aimon_otel import CostEnrichmentSpanProcessor
from tests.conftest import Telemetry

M = Decimal(1_000_000)


def emit_foreign_span(provider: TracerProvider, **attributes: object) -> None:
    tracer = provider.get_tracer("opentelemetry.instrumentation.someone_else")
    with tracer.start_as_current_span("chat gpt-4o-mini", attributes={"gen_ai.operation.name": "chat"}) as span:
        span.set_attributes(attributes)  # type: ignore[arg-type]


def test_instrument_wraps_the_providers_processors(telemetry: Telemetry) -> None:
    """No processor set up by hand: instrument() wrapped the provider's exporting processor."""
    with aimon_otel.attributes(tenant_id="acme"):
        emit_foreign_span(
            telemetry.tracer_provider,
            **{
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 200,
            },
        )
    span = telemetry.span()
    assert span.attributes["gen_ai.usage.cost"] == float((1000 * Decimal("0.15") + 200 * Decimal("0.6")) / M)
    assert span.attributes["tenant.id"] == "acme"


def test_uninstrument_unwraps_the_processors() -> None:
    from tests.conftest import make_telemetry

    telemetry = make_telemetry()
    (original,) = [p.inner for p in telemetry.tracer_provider._active_span_processor._span_processors]
    telemetry.instrumentor.uninstrument()
    assert telemetry.tracer_provider._active_span_processor._span_processors == (original,)  # the very same one
    usage = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 10}
    emit_foreign_span(telemetry.tracer_provider, **usage)
    assert "gen_ai.usage.cost" not in telemetry.span().attributes  # nothing of ours is left in the path


def test_foreign_span_priced_with_manual_processor() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(CostEnrichmentSpanProcessor(SimpleSpanProcessor(exporter)))
    with aimon_otel.attributes(tenant_id="acme"):
        emit_foreign_span(
            provider,
            **{
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 200,
                "gen_ai.usage.cache_read.input_tokens": 400,
            },
        )
        emit_foreign_span(
            provider,
            **{
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.prompt_tokens": 1000,
                "gen_ai.usage.completion_tokens": 200,
            },
        )
    with provider.get_tracer("web").start_as_current_span("GET /"):
        pass
    current, legacy, web = exporter.get_finished_spans()
    expected = (600 * Decimal("0.15") + 400 * Decimal("0.075") + 200 * Decimal("0.6")) / M
    assert current.attributes["gen_ai.usage.cost"] == float(expected)
    assert current.attributes["aimon.cost.source"] == "pricing"
    assert current.attributes["tenant.id"] == "acme"
    assert legacy.attributes["gen_ai.usage.cost"] == float((1000 * Decimal("0.15") + 200 * Decimal("0.6")) / M)
    assert "gen_ai.usage.cost" not in web.attributes and "tenant.id" not in web.attributes
    # the copy keeps the identity of the original span
    assert current.context.span_id != legacy.context.span_id and current.end_time and current.start_time


def test_foreign_span_unknown_model_and_no_usage() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(CostEnrichmentSpanProcessor(SimpleSpanProcessor(exporter)))
    emit_foreign_span(
        provider,
        **{
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "mystery",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 2,
        },
    )
    emit_foreign_span(provider, **{"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini"})
    unknown, no_usage = exporter.get_finished_spans()
    assert unknown.attributes["aimon.pricing.status"] == "unknown_model"
    assert "gen_ai.usage.cost" not in unknown.attributes
    assert "aimon.pricing.status" not in no_usage.attributes
