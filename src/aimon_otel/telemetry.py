"""The span and metric mechanics shared by every provider adapter.

An :class:`LLMCall` is one API call: it owns one CLIENT span and records the token,
duration and time-to-first-chunk metrics exactly once, when it ends. Metrics are
recorded here, not derived from spans, so trace sampling never loses them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import Histogram, Meter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from aimon_otel import semconv
from aimon_otel.config import Settings
from aimon_otel.redaction import redact


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

    def span_attributes(self) -> dict[str, AttributeValue]:
        pairs = (
            (semconv.USAGE_INPUT_TOKENS, self.input_tokens),
            (semconv.USAGE_OUTPUT_TOKENS, self.output_tokens),
            (semconv.USAGE_CACHE_READ_INPUT_TOKENS, self.cache_read_input_tokens),
            (semconv.USAGE_CACHE_CREATION_INPUT_TOKENS, self.cache_creation_input_tokens),
            (semconv.USAGE_REASONING_OUTPUT_TOKENS, self.reasoning_output_tokens),
        )
        return {name: value for name, value in pairs if value is not None}


class Telemetry:
    """The tracer, the instruments and the settings of one ``instrument()``."""

    def __init__(self, tracer: Tracer, meter: Meter, settings: Settings) -> None:
        self.tracer = tracer
        self.settings = settings
        self.token_usage: Histogram = meter.create_histogram(
            semconv.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Tokens used by GenAI calls, by token type",
            explicit_bucket_boundaries_advisory=list(semconv.TOKEN_BUCKETS),
        )
        self.duration: Histogram = meter.create_histogram(
            semconv.METRIC_OPERATION_DURATION,
            unit="s",
            description="Duration of GenAI calls, retries and the whole stream included",
            explicit_bucket_boundaries_advisory=list(semconv.DURATION_BUCKETS),
        )
        self.time_to_first_chunk: Histogram = meter.create_histogram(
            semconv.METRIC_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time from the request to the first streamed chunk",
            explicit_bucket_boundaries_advisory=list(semconv.DURATION_BUCKETS),
        )


@dataclass(frozen=True)
class Request:
    """What a provider adapter read from a request before it is sent."""

    operation: str
    provider: str
    model: str | None
    server_address: str | None
    server_port: int | None
    stream: bool
    attributes: dict[str, AttributeValue]
    secrets: tuple[str, ...] = ()


class LLMCall:
    """One API call: its span, what we learn of its response, and its metrics."""

    __slots__ = (
        "ended",
        "error_type",
        "first_chunk_at",
        "request",
        "response_model",
        "span",
        "started",
        "telemetry",
        "usage",
    )

    def __init__(self, telemetry: Telemetry, request: Request) -> None:
        self.telemetry = telemetry
        self.request = request
        self.started = time.perf_counter()
        self.first_chunk_at: float | None = None
        self.response_model: str | None = None
        self.usage: Usage | None = None
        self.error_type: str | None = None
        self.ended = False
        name = f"{request.operation} {request.model}" if request.model else request.operation
        self.span: Span = telemetry.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=request.attributes)

    # --- what the adapters report ---------------------------------------------------
    def set_response(
        self,
        *,
        model: str | None = None,
        response_id: str | None = None,
        finish_reasons: Sequence[str] | None = None,
        usage: Usage | None = None,
        extra: dict[str, AttributeValue] | None = None,
    ) -> None:
        attributes: dict[str, AttributeValue] = {}
        if model:
            self.response_model = model
            attributes[semconv.RESPONSE_MODEL] = model
        if response_id:
            attributes[semconv.RESPONSE_ID] = response_id
        if finish_reasons:
            attributes[semconv.RESPONSE_FINISH_REASONS] = list(finish_reasons)
        if usage is not None:
            self.usage = usage
            attributes.update(usage.span_attributes())
        if extra:
            attributes.update(extra)
        if attributes:
            self.span.set_attributes(attributes)

    def mark_first_chunk(self) -> None:
        if self.first_chunk_at is None:
            self.first_chunk_at = time.perf_counter()

    def fail(self, exc: BaseException) -> None:
        """Mark the call failed with the SDK's exception (class name as ``error.type``)."""
        self.fail_with(type(exc).__qualname__, f"{type(exc).__qualname__}: {exc}")

    def fail_with(self, error_type: str, description: str) -> None:
        self.error_type = error_type
        message = redact(description, self.request.secrets)
        self.span.set_attribute(semconv.ERROR_TYPE, error_type)
        self.span.set_status(Status(StatusCode.ERROR, message))
        self.span.add_event("exception", {"exception.type": error_type, "exception.message": message})

    # --- the one door out -----------------------------------------------------------
    def end(self, extra: dict[str, AttributeValue] | None = None) -> None:
        """End the span and record the metrics; later calls do nothing."""
        if self.ended:
            return
        self.ended = True
        now = time.perf_counter()
        span = self.span
        if extra:
            span.set_attributes(extra)
        if self.first_chunk_at is not None:
            span.set_attribute(semconv.RESPONSE_TIME_TO_FIRST_CHUNK, self.first_chunk_at - self.started)
        self._record_metrics(now)
        span.end()

    def _record_metrics(self, now: float) -> None:
        telemetry = self.telemetry
        request = self.request
        attributes: dict[str, AttributeValue] = {
            semconv.OPERATION_NAME: request.operation,
            semconv.PROVIDER_NAME: request.provider,
        }
        if request.model:
            attributes[semconv.REQUEST_MODEL] = request.model
        if self.response_model:
            attributes[semconv.RESPONSE_MODEL] = self.response_model
        if request.server_address:
            attributes[semconv.SERVER_ADDRESS] = request.server_address
        if request.server_port is not None:
            attributes[semconv.SERVER_PORT] = request.server_port
        context = trace.set_span_in_context(self.span)
        duration_attributes = attributes
        if self.error_type:
            duration_attributes = {**attributes, semconv.ERROR_TYPE: self.error_type}
        telemetry.duration.record(now - self.started, duration_attributes, context=context)
        if self.first_chunk_at is not None:
            telemetry.time_to_first_chunk.record(self.first_chunk_at - self.started, attributes, context=context)
        usage = self.usage
        if usage is None:
            return
        for token_type, count in _token_counts(usage):
            telemetry.token_usage.record(count, {**attributes, semconv.TOKEN_TYPE: token_type}, context=context)


def _token_counts(usage: Usage) -> Iterable[tuple[str, int]]:
    if usage.input_tokens is not None:
        yield semconv.TOKEN_INPUT, usage.input_tokens
    if usage.output_tokens is not None:
        yield semconv.TOKEN_OUTPUT, usage.output_tokens


def int_or_none(value: Any) -> int | None:
    """An SDK usage field as an int; sentinels, None and junk become None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return None
