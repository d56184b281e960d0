"""Token counts of one call, as every adapter reports them, and the checks that keep junk out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.util.types import AttributeValue

from aimon_otel import semconv


@dataclass(slots=True)
class Usage:
    """Token counts of one call, in the conventions' terms.

    ``input_tokens`` includes cached input; ``output_tokens`` includes reasoning. Read-only by convention, not
    frozen: a frozen dataclass sets each of these 20 fields through ``object.__setattr__``, 2 us on every call.
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
    image_input_tokens: int | None = None
    """Part of input_tokens: image tokens (gpt-image-*: the images given to edit), priced apart."""
    modality_tokens: tuple[tuple[str, int], ...] = ()
    """Parts of the counts above by modality, in genai-prices' unit names (``input_audio_tokens``,
    ``cache_video_read_tokens``, ``output_image_tokens``...): Gemini's ``*_tokens_details``. Text is
    what is left, so only non-text modalities are listed."""
    images: int | None = None
    """Images generated, for models priced per image (DALL·E, from the override file's ``images``)."""
    image_size: str | None = None
    image_quality: str | None = None
    """What a per-image price depends on: the request's ``size`` and ``quality``."""
    web_searches: int | None = None
    """Server-side web search requests (Anthropic ``server_tool_use.web_search_requests``), billed per request."""
    provider_cost: float | None = None
    """A cost in USD the provider reported itself (OpenRouter's ``usage.cost``)."""
    problems: tuple[str, ...] = ()
    """Why the reported usage cannot be priced (a missing, null, negative or non-integer count)."""
    passes: tuple[tuple[str | None, Usage], ...] = ()
    """Per model pass (Anthropic ``usage.iterations``: compaction, advisor...): (model or None, usage).

    When present the call is priced as the sum of its passes, each at its own model's price.
    """

    def span_attributes(self) -> dict[str, AttributeValue]:
        pairs = (
            (semconv.USAGE_INPUT_TOKENS, self.input_tokens),
            (semconv.USAGE_OUTPUT_TOKENS, self.output_tokens),
            (semconv.USAGE_CACHE_READ_INPUT_TOKENS, self.cache_read_input_tokens),
            (semconv.USAGE_CACHE_CREATION_INPUT_TOKENS, self.cache_creation_input_tokens),
            (semconv.USAGE_REASONING_OUTPUT_TOKENS, self.reasoning_output_tokens),
        )
        return {name: value for name, value in pairs if value is not None}


class CountReader:
    """Reads token counts from a provider's usage object, noting each one that is not a count.

    ``None`` (absent) is fine for optional counts; a negative, fractional or non-number value
    is a problem, and so is a required count that is absent. The problems end up in
    ``Usage.problems`` and make the call ``invalid_usage`` rather than a silent $0.
    """

    __slots__ = ("problems",)

    def __init__(self) -> None:
        self.problems: list[str] = []

    def count(self, value: Any, name: str, *, required: bool = False) -> int | None:
        if type(value) is int and value >= 0:  # what providers send: checked first (a bool's type is bool)
            return value
        if value is None:
            if required:
                self.problems.append(f"{name} is missing")
            return None
        if isinstance(value, bool):
            self.problems.append(f"{name} is {value!r}, not a count")
            return None
        if isinstance(value, int):
            if value < 0:
                self.problems.append(f"{name} is negative ({value})")
                return None
            return value
        if isinstance(value, float) and value.is_integer() and value >= 0:
            return int(value)
        self.problems.append(f"{name} is {value!r}, not a whole number")
        return None

    def result(self) -> tuple[str, ...]:
        return tuple(self.problems)
