"""``CostEnrichmentSpanProcessor``: tenant on start, price on export, for any GenAI span.

The SDK freezes a span's attributes before ``on_end`` (``Span.end`` in
``opentelemetry/sdk/trace``), so a processor cannot add a cost to a span that has ended.
Two doors instead:

* our own spans are priced by the instrumentation just before they end (``pipeline.Call.end``);
* other instrumentations' GenAI spans (the anthropic SDK's own, OpenLLMetry's, the official
  ones) are priced here: this processor *wraps* the processor that exports, and hands it an
  enriched read-only copy of each GenAI span that carries token usage but no price.

On start it stamps ``tenant.id``, ``user.id``, ``aimon.feature`` from the context on foreign
GenAI spans. Manual setup is one line::

    provider.add_span_processor(CostEnrichmentSpanProcessor(BatchSpanProcessor(exporter)))

Under ``opentelemetry-instrument`` the instrumentor wraps the provider's processors itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from aimon_otel import semconv
from aimon_otel.faults import logger, report_fault
from aimon_otel.instrumentation import active
from aimon_otel.instrumentation.native_spans import LinkRegistry, current_link, enclosing, merged
from aimon_otel.instrumentation.pipeline import cost_attributes
from aimon_otel.instrumentation.usage import Usage
from aimon_otel.pricing import PricingEngine

Attribution = Callable[[Context | None], dict[str, str]]

# Older ``gen_ai.system`` values -> ``gen_ai.provider.name``
_SYSTEM_TO_PROVIDER = {
    "az.ai.openai": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "xai": "x_ai",
    "mistralai": "mistral_ai",
    "bedrock": "aws.bedrock",
}


_OPERATION, _PROVIDER, _SYSTEM, _PRICED = (
    semconv.OPERATION_NAME, semconv.PROVIDER_NAME, "gen_ai.system", semconv.PRICING_STATUS
)  # fmt: skip


def is_genai(attributes: Mapping[str, Any] | None) -> bool:
    return bool(attributes) and (
        _OPERATION in attributes or _PROVIDER in attributes or _SYSTEM in attributes  # type: ignore[operator]
    )


def attributes_of(span: ReadableSpan) -> Mapping[str, Any]:
    """A span's attributes as a plain dict where the SDK keeps one: its ``BoundedAttributes`` answers ``in`` and
    ``get`` through a raised ``KeyError`` for an absent key, microseconds a check, and this processor asks
    about absent keys on every span the app makes. Falls back to the public mapping."""
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    if isinstance(inner, dict):
        return inner
    return span.attributes or {}


def usage_from_attributes(attributes: Mapping[str, Any]) -> Usage | None:
    """Token usage of a span, current names first, then the older ``prompt``/``completion`` ones."""

    def number(*names: str) -> int | None:
        for name in names:
            value = attributes.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None

    input_tokens = number(semconv.USAGE_INPUT_TOKENS, "gen_ai.usage.prompt_tokens")
    output_tokens = number(semconv.USAGE_OUTPUT_TOKENS, "gen_ai.usage.completion_tokens")
    if input_tokens is None and output_tokens is None:
        return None
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_input_tokens=number(semconv.USAGE_CACHE_READ_INPUT_TOKENS),
        cache_creation_input_tokens=number(
            semconv.USAGE_CACHE_CREATION_INPUT_TOKENS,
            "gen_ai.usage.cache_write.input_tokens",  # anthropic 2.x's name
        ),
        reasoning_output_tokens=number(semconv.USAGE_REASONING_OUTPUT_TOKENS),
    )


def provider_of(attributes: Mapping[str, Any]) -> str:
    provider = attributes.get(semconv.PROVIDER_NAME) or attributes.get("gen_ai.system") or "unknown"
    return _SYSTEM_TO_PROVIDER.get(str(provider), str(provider))


class CostEnrichmentSpanProcessor(SpanProcessor):
    """Wraps the exporting span processor (``inner``); see the module docstring."""

    def __init__(
        self,
        inner: SpanProcessor | None = None,
        engine: PricingEngine | None = None,
        attribution: Attribution | None = None,
    ) -> None:
        """``engine`` and ``attribution`` default to the instrumentor's (its pricing file, its resolver)."""
        self.inner = inner
        self._engine = engine
        self._attribution = attribution
        self.links = LinkRegistry()

    @property
    def engine(self) -> PricingEngine:
        if self._engine is None:
            self._engine = active.fallback_pipeline().engine
        return self._engine

    def attribution(self, context: Context | None) -> dict[str, str]:
        if self._attribution is not None:
            return self._attribution(context)
        # The instrumented calls' pipeline, else one from the environment: user ids hashed alike.
        return active.fallback_pipeline().attribution(context)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            attributes = attributes_of(span)  # runs on every span the app makes: a plain dict, no KeyError raised
            if is_genai(attributes) and (
                (scope := span.instrumentation_scope) is None or scope.name != semconv.INSTRUMENTATION_SCOPE
            ):
                link = current_link.get()
                if link is not None:  # the SDK's own span for a call we are following
                    link.adopt(span, self.links)
                stamped = {k: v for k, v in self.attribution(parent_context).items() if k not in attributes}
                if stamped:
                    span.set_attributes(stamped)
        except Exception as fault:
            report_fault("span processor start", fault)
        if self.inner is not None:
            self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        inner = self.inner
        if inner is None:
            return
        if self.links.pending or enclosing.pending:  # calls joined to another span are in flight: one of those?
            link = self.links.get(span) or enclosing.get(span)
            if link is not None:
                link.deliver(self._forward_with, span)
                return
        try:
            attributes = attributes_of(span)
            unpriced_genai = _PRICED not in attributes and is_genai(attributes)  # ours are priced already
        except Exception as fault:
            report_fault("span processor end", fault)
            unpriced_genai = False
        inner.on_end(self.enriched(span, attributes) if unpriced_genai else span)

    def _forward_with(self, span: ReadableSpan, ours: Mapping[str, Any], restated: Mapping[str, Any]) -> None:
        """Send on the SDK's (or an enclosing instrumentation's) span with what our call learnt; our
        figures win where both set one (``native_spans.merged``)."""
        assert self.inner is not None
        try:
            enriched = _copy_with(span, merged(attributes_of(span), ours, restated))
        except Exception as fault:
            report_fault("span processor forward", fault)
            enriched = span
        self.inner.on_end(enriched)

    def enriched(self, span: ReadableSpan, attributes: Mapping[str, Any]) -> ReadableSpan:
        """An unpriced GenAI span's copy with its price when it carries token usage, else the span itself."""
        try:
            usage = usage_from_attributes(attributes)
            if usage is None:
                return span
            model = attributes.get(semconv.RESPONSE_MODEL) or attributes.get(semconv.REQUEST_MODEL)
            at = span.start_time / 1e9 if span.start_time else None  # epoch seconds: the engine's fast path
            cost = self.engine.price(provider_of(attributes), str(model) if model else None, usage, at=at)
            return _copy_with(span, {**attributes, **cost_attributes(cost)})
        except Exception as fault:
            report_fault("span processor end", fault)
            return span

    def shutdown(self) -> None:
        if self.inner is not None:
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis) if self.inner is not None else True


def _copy_with(span: ReadableSpan, attributes: Mapping[str, Any]) -> ReadableSpan:
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def wrap_provider_processors(
    tracer_provider: Any, engine: PricingEngine, attribution: Attribution | None = None
) -> Callable[[], None] | None:
    """Wrap each processor of an SDK ``TracerProvider`` so foreign GenAI spans get priced.

    Returns a function that undoes it, or None when the provider is not the SDK's (then use
    the one-line manual setup). Processors added to the provider later are not wrapped.
    """
    multi = getattr(tracer_provider, "_active_span_processor", None)
    processors = getattr(multi, "_span_processors", None)
    lock = getattr(multi, "_lock", None) or threading.Lock()
    if not isinstance(processors, tuple):
        logger.debug("aimon-otel: tracer provider %r has no SDK span processors to wrap", tracer_provider)
        return None
    wrapped = tuple(
        p if isinstance(p, CostEnrichmentSpanProcessor) else CostEnrichmentSpanProcessor(p, engine, attribution)
        for p in processors
    )
    with lock:
        multi._span_processors = wrapped  # type: ignore[union-attr]

    ours = {id(p) for p in wrapped if p not in processors}

    def restore() -> None:
        with lock:
            multi._span_processors = tuple(  # type: ignore[union-attr]
                p.inner if id(p) in ours and isinstance(p, CostEnrichmentSpanProcessor) and p.inner else p
                for p in multi._span_processors  # type: ignore[union-attr]
            )

    return restore
