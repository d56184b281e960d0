"""The span and metric mechanics shared by every provider adapter.

An :class:`LLMCall` is one API call: it owns one CLIENT span and records the token,
duration and time-to-first-chunk metrics exactly once, when it ends. Metrics are
recorded here, not derived from spans, so trace sampling never loses them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import Counter, Histogram, Meter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from aimon_otel import semconv
from aimon_otel.cardinality import ValueLimiter
from aimon_otel.config import Settings
from aimon_otel.context import current_attributes
from aimon_otel.faults import report_fault
from aimon_otel.native_spans import AttributeSink, NativeLink, current_link
from aimon_otel.pricing import CostResult, PricingEngine, PricingStatus
from aimon_otel.redaction import redact
from aimon_otel.usage import Usage


class Telemetry:
    """The tracer, the instruments, the pricing engine and the settings of one ``instrument()``."""

    def __init__(self, tracer: Tracer, meter: Meter, settings: Settings, engine: PricingEngine | None = None) -> None:
        self.tracer = tracer
        self.settings = settings
        self.engine = engine or PricingEngine()
        self.limiter = ValueLimiter(settings.metrics_max_values)
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
        self.cost: Histogram = meter.create_histogram(
            semconv.METRIC_COST,
            unit="USD",
            description="Cost of GenAI calls in US dollars",
            explicit_bucket_boundaries_advisory=list(semconv.COST_BUCKETS),
        )
        self.usage_tokens: Counter = meter.create_counter(
            semconv.METRIC_USAGE_TOKENS,
            unit="{token}",
            description="Tokens priced apart, by aimon.token.type: cache read and write (part of input), "
            "reasoning (part of output); recorded only when above 0",
        )
        self.cache_savings: Counter = meter.create_counter(
            semconv.METRIC_CACHE_SAVINGS,
            unit="USD",
            description="What prompt caching saved: cache-read tokens at the input price, less their cost",
        )
        self.unpriced_calls: Counter = meter.create_counter(
            semconv.METRIC_UNPRICED_CALLS,
            unit="{call}",
            description="GenAI calls that could not be priced (unknown model, no usage reported...)",
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
    sdk_traces_itself: bool = False
    """The SDK starts its own span for this call (anthropic 2.x): we add to it rather than start one."""
    billable: bool = True
    """False for calls that cost nothing (token counting): no cost, not counted as unpriced."""


class LLMCall:
    """One API call: its span, what we learn of its response, and its metrics."""

    __slots__ = (
        "attribution",
        "ended",
        "error_type",
        "first_chunk_at",
        "link",
        "request",
        "response_model",
        "service_tier",
        "span",
        "started",
        "started_wall",
        "telemetry",
        "usage",
    )

    def __init__(self, telemetry: Telemetry, request: Request) -> None:
        self.telemetry = telemetry
        self.request = request
        self.started = time.perf_counter()
        self.started_wall = time.time()
        self.first_chunk_at: float | None = None
        self.service_tier: str | None = None
        self.response_model: str | None = None
        self.usage: Usage | None = None
        self.error_type: str | None = None
        self.ended = False
        self.attribution = current_attributes()
        attributes = {**request.attributes, **self.attribution} if self.attribution else request.attributes
        self.link: NativeLink | None = None
        if request.sdk_traces_itself:
            self.link = NativeLink()
            self.span: Span = AttributeSink(self.link, attributes)  # type: ignore[assignment]
        else:
            name = f"{request.operation} {request.model}" if request.model else request.operation
            self.span = telemetry.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)

    def activate(self) -> Callable[[], None]:
        """Make this call current while the SDK works; returns what undoes it.

        Our span becomes the parent of HTTP spans; with the SDK's own span, the link is set so the
        span processor can adopt that span.
        """
        if self.link is not None:
            token = current_link.set(self.link)
            return lambda: current_link.reset(token)
        scope = otel_context.attach(trace.set_span_in_context(self.span))
        return lambda: otel_context.detach(scope)

    # --- what the adapters report ---------------------------------------------------
    def set_response(
        self,
        *,
        model: str | None = None,
        response_id: str | None = None,
        finish_reasons: Sequence[str] | None = None,
        usage: Usage | None = None,
        service_tier: str | None = None,
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
        if service_tier:
            self.service_tier = service_tier
            attributes[semconv.RESPONSE_SERVICE_TIER] = service_tier
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
    def end(self, extra: dict[str, AttributeValue] | None = None) -> CostResult:
        """End the span and record the metrics, once; returns the call's cost."""
        if self.ended:
            return _ALREADY_ENDED
        self.ended = True
        now = time.perf_counter()
        span = self.span
        cost = self._price()
        attributes = dict(extra) if extra else {}  # one set_attributes call: each takes the span's lock
        if self.first_chunk_at is not None:
            attributes[semconv.RESPONSE_TIME_TO_FIRST_CHUNK] = self.first_chunk_at - self.started
        attributes.update(cost_attributes(cost))
        if attributes:
            span.set_attributes(attributes)
        self._record_metrics(now, cost)
        span.end()
        return cost

    def _price(self) -> CostResult:
        request = self.request
        if not request.billable:
            return _NOT_BILLABLE
        try:
            return self.telemetry.engine.price(
                request.provider,
                self.response_model or request.model,
                self.usage,
                at=datetime.fromtimestamp(self.started_wall, UTC),
                service_tier=self.service_tier,
                provider_cost=self.usage.provider_cost if self.usage is not None else None,
            )
        except Exception as fault:
            report_fault("pricing", fault)
            return CostResult(PricingStatus.INVALID_USAGE)

    def _record_metrics(self, now: float, cost: CostResult) -> None:
        telemetry = self.telemetry
        request = self.request
        admit = telemetry.limiter.admit
        attributes: dict[str, AttributeValue] = {
            semconv.OPERATION_NAME: request.operation,
            semconv.PROVIDER_NAME: request.provider,
        }
        if request.model:
            attributes[semconv.REQUEST_MODEL] = admit(semconv.REQUEST_MODEL, request.model)
        if self.response_model:
            attributes[semconv.RESPONSE_MODEL] = admit(semconv.RESPONSE_MODEL, self.response_model)
        if request.server_address:
            attributes[semconv.SERVER_ADDRESS] = admit(semconv.SERVER_ADDRESS, request.server_address)
        attribution = self.attribution
        if attribution:
            for key in _METRIC_ATTRIBUTION:
                if key in attribution:
                    attributes[key] = admit(key, attribution[key])
            if telemetry.settings.metrics_include_user and semconv.USER_ID in attribution:
                attributes[semconv.USER_ID] = admit(semconv.USER_ID, attribution[semconv.USER_ID])
        span = self.link.span if self.link is not None else self.span
        context = trace.set_span_in_context(span) if span is not None else None
        if not request.billable:
            pass
        elif cost.total is not None:
            cost_attributes = {key: value for key, value in attributes.items() if key not in _NOT_ON_COST}
            cost_attributes[semconv.COST_SOURCE] = cost.source
            telemetry.cost.record(float(cost.total), cost_attributes, context=context)
            if cost.cache_savings > 0:
                telemetry.cache_savings.add(float(cost.cache_savings), cost_attributes, context=_NO_EXEMPLAR)
        elif cost.status is not PricingStatus.NO_USAGE or self.error_type is None:
            telemetry.unpriced_calls.add(
                1,
                {
                    **{k: v for k, v in attributes.items() if k not in _NOT_ON_COST},
                    semconv.PRICING_STATUS: cost.status.value,
                },
                context=context,
            )
        duration_attributes = attributes
        if self.error_type:
            duration_attributes = {**attributes, semconv.ERROR_TYPE: self.error_type}
        telemetry.duration.record(now - self.started, duration_attributes, context=context)
        if self.first_chunk_at is not None:
            telemetry.time_to_first_chunk.record(self.first_chunk_at - self.started, attributes, context=context)
        usage = self.usage
        if usage is None:
            return
        # gen_ai.client.token.usage carries input and output only (as the conventions define them), so
        # any GenAI dashboard's sum over it is right; the parts priced apart go to aimon.usage.tokens.
        if usage.input_tokens is not None:
            token_attributes = {**attributes, semconv.TOKEN_TYPE: semconv.TOKEN_INPUT}
            telemetry.token_usage.record(usage.input_tokens, token_attributes, context=_NO_EXEMPLAR)
        if usage.output_tokens is not None:
            token_attributes = {**attributes, semconv.TOKEN_TYPE: semconv.TOKEN_OUTPUT}
            telemetry.token_usage.record(usage.output_tokens, token_attributes, context=_NO_EXEMPLAR)
        for token_type, count in _priced_apart(usage):
            token_attributes = {**attributes, semconv.AIMON_TOKEN_TYPE: token_type}
            telemetry.usage_tokens.add(count, token_attributes, context=_NO_EXEMPLAR)


_ALREADY_ENDED = CostResult(PricingStatus.NO_USAGE)
# Exemplars (links from a metric point to a trace) go on duration and cost, where one jumps to the
# slow or costly call; token records pass an empty context so the SDK skips sampling one for each.
_NO_EXEMPLAR = otel_context.Context()
_NOT_BILLABLE = CostResult(PricingStatus.NO_USAGE)
_METRIC_ATTRIBUTION = (semconv.TENANT_ID, semconv.FEATURE)
_NOT_ON_COST = (semconv.SERVER_ADDRESS, semconv.SERVER_PORT)


def cost_attributes(cost: CostResult) -> dict[str, AttributeValue]:
    """The span attributes that say what a call cost, or why it has no cost."""
    if cost is _NOT_BILLABLE:
        return {}
    attributes: dict[str, AttributeValue] = {semconv.PRICING_STATUS: cost.status.value}
    if cost.model:
        attributes[semconv.PRICING_MODEL] = cost.model
    if cost.total is None:
        return attributes
    attributes[semconv.USAGE_COST] = float(cost.total)
    attributes[semconv.COST_SOURCE] = cost.source
    if cost.source == "pricing":
        attributes[semconv.COST_INPUT] = float(cost.input)
        attributes[semconv.COST_OUTPUT] = float(cost.output)
        attributes[semconv.COST_CACHE_READ] = float(cost.cache_read)
        attributes[semconv.COST_CACHE_WRITE] = float(cost.cache_write)
        if cost.requests:
            attributes[semconv.COST_REQUESTS] = float(cost.requests)
        if cost.cache_savings > 0:
            attributes[semconv.COST_CACHE_SAVINGS] = float(cost.cache_savings)
    return attributes


def _priced_apart(usage: Usage) -> Iterable[tuple[str, int]]:
    """The parts of input and output priced differently, when there are any."""
    if usage.cache_read_input_tokens:
        yield semconv.TOKEN_CACHE_READ, usage.cache_read_input_tokens
    if usage.cache_creation_input_tokens:
        yield semconv.TOKEN_CACHE_WRITE, usage.cache_creation_input_tokens
    if usage.reasoning_output_tokens:
        yield semconv.TOKEN_REASONING, usage.reasoning_output_tokens
