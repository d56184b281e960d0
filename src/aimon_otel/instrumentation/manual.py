"""``cost()`` and ``record_usage()``: pricing and telemetry for calls we do not patch."""

from __future__ import annotations

from datetime import datetime

from aimon_otel import semconv
from aimon_otel.instrumentation.instrumentor import AimonInstrumentor
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.usage import Usage
from aimon_otel.pricing import CostResult


def cost(
    provider: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    *,
    cache_write_1h_tokens: int | None = None,
    at: datetime | None = None,
    service_tier: str | None = None,
) -> CostResult:
    """What a call would cost: ``input_tokens`` include cached ones, ``output_tokens`` reasoning.

    ``provider`` is a ``gen_ai.provider.name`` (``openai``, ``anthropic``, ``aws.bedrock``...). Priced
    with the instrumentor's engine (and so its pricing file) once ``instrument()`` has run.
    """
    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_input_tokens=cache_read_tokens,
        cache_creation_input_tokens=cache_write_tokens,
        cache_creation_1h_input_tokens=cache_write_1h_tokens,
        reasoning_output_tokens=reasoning_tokens,
    )
    return AimonInstrumentor().pricing_engine().price(provider, model, usage, at=at, service_tier=service_tier)


def record_usage(
    *,
    provider: str,
    model: str,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    operation: str = semconv.OP_CHAT,
    response_model: str | None = None,
    provider_cost: float | None = None,
    error_type: str | None = None,
) -> CostResult:
    """Emit the same span and metrics as an instrumented call, for an SDK we do not patch.

    Call it right after the call returns; the span covers only the recording. Returns the cost.
    """
    invocation = Invocation(operation=operation, provider=provider, request_model=model)
    invocation.answered(
        model=response_model or model,
        usage=Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_input_tokens=cache_read_tokens,
            cache_creation_input_tokens=cache_write_tokens,
            reasoning_output_tokens=reasoning_tokens,
            provider_cost=provider_cost,
        ),
    )
    if error_type:
        invocation.failed(error_type, error_type)
    return AimonInstrumentor().fallback_pipeline().start(invocation).end()
