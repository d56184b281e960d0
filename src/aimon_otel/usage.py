"""Token counts of one call, as every adapter reports them."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.util.types import AttributeValue

from aimon_otel import semconv


@dataclass(frozen=True)
class Usage:
    """Token counts of one call, in the conventions' terms.

    ``input_tokens`` includes cached input; ``output_tokens`` includes reasoning.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None
    cache_creation_5m_input_tokens: int | None = None
    cache_creation_1h_input_tokens: int | None = None
    audio_input_tokens: int | None = None
    """Part of input_tokens (priced apart where the model has an audio price)."""
    audio_output_tokens: int | None = None
    provider_cost: float | None = None
    """A cost in USD the provider reported itself (OpenRouter's ``usage.cost``)."""

    def span_attributes(self) -> dict[str, AttributeValue]:
        pairs = (
            (semconv.USAGE_INPUT_TOKENS, self.input_tokens),
            (semconv.USAGE_OUTPUT_TOKENS, self.output_tokens),
            (semconv.USAGE_CACHE_READ_INPUT_TOKENS, self.cache_read_input_tokens),
            (semconv.USAGE_CACHE_CREATION_INPUT_TOKENS, self.cache_creation_input_tokens),
            (semconv.USAGE_REASONING_OUTPUT_TOKENS, self.reasoning_output_tokens),
        )
        return {name: value for name, value in pairs if value is not None}
