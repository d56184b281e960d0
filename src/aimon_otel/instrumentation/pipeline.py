"""Invocation → telemetry, in one pass and one direction: attribution → price → span attributes → metrics → sinks.

A :class:`Pipeline` belongs to one ``instrument()``: its tracer, instruments, pricing engine,
settings and tenant resolver. :meth:`Pipeline.start` opens a :class:`Call` for an
:class:`~aimon_otel.instrumentation.invocation.Invocation` (attribution is read then, in the caller's
context, and the CLIENT span starts); :meth:`Call.end` is the one door out: it prices the
call once, writes the span's attributes in one go, records the metrics and hands the result
to the sinks (the budget ledger, when there is one). Metrics are recorded here, not derived
from spans, so trace sampling never loses them.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterable
from typing import NamedTuple

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import Counter, Histogram, Meter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from aimon_otel import semconv
from aimon_otel.attribution.cardinality import ValueLimiter
from aimon_otel.attribution.context import Resolver, current_attributes
from aimon_otel.attribution.privacy import key_fingerprinter, user_id_hasher
from aimon_otel.budgets.gauges import BudgetGauges
from aimon_otel.budgets.guard import BudgetExceeded, Guard
from aimon_otel.config import Settings
from aimon_otel.faults import report_fault
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.native_spans import NativeLink, current_link, join_enclosing, restated
from aimon_otel.instrumentation.tallies import Tally, readings_for, tally_for
from aimon_otel.instrumentation.usage import Usage
from aimon_otel.pricing import CostResult, PricingEngine, PricingStatus
from aimon_otel.pricing.freshness import price_data_readings

Sink = Callable[[Invocation, CostResult, dict[str, str]], None]
"""Told of every ended call with its cost and attribution (the budget ledger is one)."""


class Pipeline:
    """The tracer, the instruments, the pricing engine, the settings and the resolver of one ``instrument()``."""

    def __init__(
        self,
        tracer: Tracer,
        meter: Meter,
        settings: Settings,
        engine: PricingEngine | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.tracer = tracer
        self.meter = meter
        self.settings = settings
        self.engine = engine or PricingEngine()
        self.resolver = resolver
        self.hash_user = user_id_hasher(settings)
        """``user.id`` hashed before it leaves the process (``AIMON_USER_ID_HASH``), or None."""
        self.key_id = key_fingerprinter(settings)
        """The API key's fingerprint (``aimon.api_key.id``, ``AIMON_KEY_SALT``), or None when not recorded."""
        self.sinks: list[Sink] = []
        self.process_id = uuid.uuid4().hex[:16]
        self.call_numbers = itertools.count()
        """Call ids: this process's random prefix and a counter (unique across processes and restarts)."""
        self.guard: Guard | None = None
        """The budget guard, asked before each call is sent (its ledger is also one of the sinks)."""
        self.limiter = ValueLimiter(settings.metrics_max_values)
        self.metric_sets: dict[tuple[object, ...], MetricSets] = {}
        """The attribute sets a call's metric points carry, by what they are made of: the few that a service's
        calls share are built once (their values admitted by the limiter once), not on every call."""
        self.active = True
        """False once ``uninstrument()`` ran: a wrapper an SDK kept (cohere binds its methods to each client
        it makes; an app may hold ``litellm.completion``) then calls straight through."""
        self.token_usage: Histogram = meter.create_histogram(
            semconv.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Input and output tokens used by GenAI calls",
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
        # Summed here and read at collection (see tallies.py): no exemplars needed, a fraction of the cost.
        self.usage_tokens: Tally = tally_for(
            meter,
            semconv.METRIC_USAGE_TOKENS,
            unit="{token}",
            description="Tokens priced apart, by aimon.token.type: cache read and write (part of input), "
            "reasoning (part of output); counted only when above 0",
        )
        self.cache_savings: Tally = tally_for(
            meter,
            semconv.METRIC_CACHE_SAVINGS,
            unit="USD",
            description="What prompt caching saved: cache-read tokens at the input price, less their cost",
        )
        self.unpriced_calls: Counter = meter.create_counter(
            semconv.METRIC_UNPRICED_CALLS,
            unit="{call}",
            description="GenAI calls that could not be priced (unknown model, no usage reported...)",
        )
        readings_for(
            meter,
            semconv.METRIC_PRICING_DATA_TIMESTAMP,
            "s",
            "When the prices in use were known current (genai-prices' release day, an override file's checked:)",
        ).source = price_data_readings(self.engine)

    def attribution(self, context: otel_context.Context | None = None) -> dict[str, str]:
        found = current_attributes(context, self.resolver)
        hash_user = self.hash_user
        if hash_user is not None and semconv.USER_ID in found:
            hashed = hash_user(found[semconv.USER_ID])
            if hashed is None:
                del found[semconv.USER_ID]
            else:
                found[semconv.USER_ID] = hashed
        return found

    def start(self, invocation: Invocation) -> Call:
        return Call(self, invocation)

    def attach_guard(self, guard: Guard) -> None:
        """Budgets: the guard is asked before each call, its ledger told after, its state exported as gauges."""
        self.guard = guard
        self.sinks.append(guard.record)
        gauges = BudgetGauges(guard)
        for name, description, read in (
            (
                semconv.METRIC_BUDGET_SPENT,
                "Spend in the budget's current period (USD, or tokens: see aimon.budget.unit)",
                gauges.spent,
            ),
            (semconv.METRIC_BUDGET_LIMIT, "The budget's limit (USD, or tokens: see aimon.budget.unit)", gauges.limit),
            (semconv.METRIC_BUDGET_RESETS_AT, "When the budget's period resets, Unix seconds", gauges.resets_at),
        ):
            readings_for(self.meter, name, "", description).source = read
        readings_for(
            self.meter, semconv.METRIC_BUDGET_BALANCE, "USD", "A credit budget's prepaid balance (USD)"
        ).source = gauges.balance

    def detach_guard(self) -> None:
        guard, self.guard = self.guard, None
        if guard is None:
            return
        for name in (semconv.METRIC_BUDGET_SPENT, semconv.METRIC_BUDGET_LIMIT, semconv.METRIC_BUDGET_RESETS_AT):
            readings_for(self.meter, name, "", "").source = None
        readings_for(self.meter, semconv.METRIC_BUDGET_BALANCE, "USD", "").source = None
        try:
            guard.ledger.close()
        except Exception as fault:
            report_fault("budget ledger close", fault)

    def refusal(self, call: Call) -> BudgetExceeded | None:
        """The budget refusal for a call about to be sent, or None to send it (always None without budgets)."""
        guard = self.guard
        if guard is None:
            return None
        try:
            return guard.check(call.invocation, call.attribution)
        except BudgetExceeded as refused:  # the ledger is unreachable and AIMON_BUDGET_FAIL=closed
            return refused
        except Exception as fault:
            report_fault("budget check", fault)
            return None

    def price(self, invocation: Invocation) -> CostResult:
        if not invocation.billable:
            return NOT_BILLABLE
        usage = invocation.usage
        try:
            return self.engine.price(
                invocation.provider,
                invocation.model,
                usage,
                at=invocation.started_wall,
                service_tier=invocation.service_tier,
                provider_cost=usage.provider_cost if usage is not None else None,
            )
        except Exception as fault:
            report_fault("pricing", fault)
            return CostResult(PricingStatus.INVALID_USAGE)


class Call:
    """One call in flight: its invocation, attribution and span (or the link to the SDK's own span)."""

    __slots__ = ("attribution", "ended", "invocation", "link", "pipeline", "span")

    def __init__(self, pipeline: Pipeline, invocation: Invocation) -> None:
        self.pipeline = pipeline
        self.invocation = invocation
        self.ended = False
        self.attribution = pipeline.attribution()
        key_id = pipeline.key_id
        if key_id is not None and invocation.secrets and invocation.secrets[0]:
            self.attribution[semconv.API_KEY_ID] = key_id(invocation.secrets[0])
        self.link: NativeLink | None = None
        self.span: Span | None = None
        if invocation.sdk_traces_itself:
            self.link = NativeLink()
        elif invocation.joins_enclosing_span and (link := join_enclosing(trace.get_current_span())) is not None:
            self.link = link
        else:
            self.span = self._start_span()

    def _start_span(self) -> Span:
        invocation = self.invocation
        model = invocation.request_model
        name = f"{invocation.operation} {model}" if model else invocation.operation
        attributes = start_attributes(invocation)
        if self.attribution:
            attributes.update(self.attribution)
        return self.pipeline.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)

    def refuse(self, refusal: BudgetExceeded) -> None:
        """End a call a budget refused: it was never sent, so the span (ours, even where the SDK
        traces its own calls) says why and carries no cost."""
        if self.span is None:
            self.link = None
            self.span = self._start_span()
        self.invocation.failed(semconv.BUDGET_EXCEEDED, str(refusal))
        self.invocation.response_attributes[semconv.BUDGET_NAME] = refusal.budget
        self.end()

    def activate(self) -> Callable[[], None]:
        """Make this call current while the SDK works; returns what undoes it.

        Our span becomes the parent of HTTP spans; with the SDK's own span, the link is set so the
        span processor can adopt that span.
        """
        if self.link is not None:
            token = current_link.set(self.link)
            return lambda: current_link.reset(token)
        scope = otel_context.attach(trace.set_span_in_context(self.span))  # type: ignore[arg-type]
        return lambda: otel_context.detach(scope)

    def end(self) -> CostResult:
        """Price the call, write its span and metrics, tell the sinks; once. The span ends whatever fails."""
        if self.ended:
            return ALREADY_ENDED
        self.ended = True
        invocation = self.invocation
        now = time.perf_counter()
        pipeline = self.pipeline
        span = self.span
        attributes: dict[str, AttributeValue] = {}
        cost = ALREADY_ENDED
        try:
            cost = pipeline.price(invocation)
            attributes = end_attributes(invocation, cost)
            if span is not None:
                span.set_attributes(attributes)  # one call: each takes the span's lock
                if invocation.error_type is not None:
                    message = invocation.error_message or invocation.error_type
                    span.set_status(Status(StatusCode.ERROR, message))
                    span.add_event("exception", {"exception.type": invocation.error_type, "exception.message": message})
            record_metrics(pipeline, invocation, self.attribution, cost, now, self._exemplar_context())
            sinks = pipeline.sinks
            if sinks and invocation.call_id is None:
                invocation.call_id = f"{pipeline.process_id}-{next(pipeline.call_numbers)}"
            for sink in sinks:
                try:
                    sink(invocation, cost, self.attribution)
                except Exception as fault:
                    report_fault("sink", fault)
        finally:
            if span is not None:
                span.end()
            elif self.link is not None:  # the SDK's (or an enclosing) span: the processor merges these into it
                self.link.complete(
                    {**start_attributes(invocation), **self.attribution, **attributes}, restated(invocation.usage)
                )
        return cost

    def _exemplar_context(self) -> otel_context.Context | None:
        span = self.link.span if self.link is not None else self.span
        return trace.set_span_in_context(span) if span is not None else None


ALREADY_ENDED = CostResult(PricingStatus.NO_USAGE)
NOT_BILLABLE = CostResult(PricingStatus.NO_USAGE)
# Exemplars (links from a metric point to a trace) go on duration and cost, where one jumps to the
# slow or costly call; token records pass an empty context so the SDK skips sampling one for each.
_NO_EXEMPLAR = otel_context.Context()
_METRIC_ATTRIBUTION = (semconv.TENANT_ID, semconv.FEATURE, semconv.AGENT_NAME, semconv.API_KEY_ID)
"""Not user.id (unless opted in) nor gen_ai.conversation.id: unbounded values stay on spans."""
_NOT_ON_COST = (semconv.SERVER_ADDRESS, semconv.SERVER_PORT)


def start_attributes(invocation: Invocation) -> dict[str, AttributeValue]:
    """What is known before sending: the span's attributes at start (samplers see them)."""
    attributes: dict[str, AttributeValue] = {
        semconv.OPERATION_NAME: invocation.operation,
        semconv.PROVIDER_NAME: invocation.provider,
    }
    if invocation.request_model:
        attributes[semconv.REQUEST_MODEL] = invocation.request_model
    if invocation.server_address:
        attributes[semconv.SERVER_ADDRESS] = invocation.server_address
    if invocation.server_port is not None:
        attributes[semconv.SERVER_PORT] = invocation.server_port
    attributes.update(invocation.request_attributes)
    return attributes


def end_attributes(invocation: Invocation, cost: CostResult) -> dict[str, AttributeValue]:
    """What the answer and the price added, set on the span once, when it ends."""
    attributes: dict[str, AttributeValue] = {}
    if invocation.response_model:
        attributes[semconv.RESPONSE_MODEL] = invocation.response_model
    if invocation.response_id:
        attributes[semconv.RESPONSE_ID] = invocation.response_id
    if invocation.finish_reasons:
        attributes[semconv.RESPONSE_FINISH_REASONS] = list(invocation.finish_reasons)
    if invocation.service_tier:
        attributes[semconv.RESPONSE_SERVICE_TIER] = invocation.service_tier
    if invocation.usage is not None:
        attributes.update(invocation.usage.span_attributes())
    if invocation.response_attributes:
        attributes.update(invocation.response_attributes)
    if invocation.first_chunk_at is not None:
        attributes[semconv.RESPONSE_TIME_TO_FIRST_CHUNK] = invocation.first_chunk_at - invocation.started
    if invocation.stream_outcome is not None:
        attributes[semconv.STREAM_OUTCOME] = invocation.stream_outcome
    if invocation.error_type is not None:
        attributes[semconv.ERROR_TYPE] = invocation.error_type
    attributes.update(cost_attributes(cost))
    return attributes


def cost_attributes(cost: CostResult) -> dict[str, AttributeValue]:
    """The span attributes that say what a call cost, or why it has no cost."""
    if cost is NOT_BILLABLE:
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


class MetricSets(NamedTuple):
    """The attribute sets of one kind of call's metric points (never changed once made: the SDK may keep them)."""

    base: dict[str, AttributeValue]
    on_duration: dict[str, AttributeValue]
    on_cost: dict[str, AttributeValue]
    """With the cost's source, or the pricing status when unpriced."""
    token_input: dict[str, AttributeValue]
    token_output: dict[str, AttributeValue]
    priced_apart: dict[str, dict[str, AttributeValue]]
    """By ``aimon.token.type``."""


MAX_METRIC_SETS = 4096


def record_metrics(
    pipeline: Pipeline,
    invocation: Invocation,
    attribution: dict[str, str],
    cost: CostResult,
    now: float,
    context: otel_context.Context | None,
) -> None:
    total = cost.total
    priced = total is not None
    get = attribution.get
    key = (
        invocation.operation, invocation.provider, invocation.request_model, invocation.response_model,
        invocation.server_address, invocation.error_type, cost.source if priced else cost.status,
        get(semconv.TENANT_ID), get(semconv.FEATURE), get(semconv.AGENT_NAME), get(semconv.API_KEY_ID),
        get(semconv.USER_ID) if pipeline.settings.metrics_include_user else None,
    )  # fmt: skip
    sets = pipeline.metric_sets.get(key)
    if sets is None:
        sets = _metric_sets(pipeline, invocation, attribution, cost)
        if len(pipeline.metric_sets) >= MAX_METRIC_SETS:
            pipeline.metric_sets.clear()
        pipeline.metric_sets[key] = sets
    if not invocation.billable:
        pass
    elif total is not None:
        pipeline.cost.record(float(total), sets.on_cost, context=context)
        if cost.cache_savings > 0:
            pipeline.cache_savings.add(float(cost.cache_savings), sets.on_cost)
    elif cost.status is not PricingStatus.NO_USAGE or invocation.error_type is None:
        pipeline.unpriced_calls.add(1, sets.on_cost, context=context)
    pipeline.duration.record(now - invocation.started, sets.on_duration, context=context)
    if invocation.first_chunk_at is not None:
        pipeline.time_to_first_chunk.record(invocation.first_chunk_at - invocation.started, sets.base, context=context)
    usage = invocation.usage
    if usage is None:
        return
    # gen_ai.client.token.usage carries input and output only (as the conventions define them), so
    # any GenAI dashboard's sum over it is right; the parts priced apart go to aimon.usage.tokens.
    if usage.input_tokens is not None:
        pipeline.token_usage.record(usage.input_tokens, sets.token_input, context=_NO_EXEMPLAR)
    if usage.output_tokens is not None:
        pipeline.token_usage.record(usage.output_tokens, sets.token_output, context=_NO_EXEMPLAR)
    for token_type, count in _priced_apart(usage):
        pipeline.usage_tokens.add(count, sets.priced_apart[token_type])


def _metric_sets(
    pipeline: Pipeline, invocation: Invocation, attribution: dict[str, str], cost: CostResult
) -> MetricSets:
    admit = pipeline.limiter.admit
    attributes: dict[str, AttributeValue] = {
        semconv.OPERATION_NAME: invocation.operation,
        semconv.PROVIDER_NAME: invocation.provider,
    }
    if invocation.request_model:
        attributes[semconv.REQUEST_MODEL] = admit(semconv.REQUEST_MODEL, invocation.request_model)
    if invocation.response_model:
        attributes[semconv.RESPONSE_MODEL] = admit(semconv.RESPONSE_MODEL, invocation.response_model)
    if invocation.server_address:
        attributes[semconv.SERVER_ADDRESS] = admit(semconv.SERVER_ADDRESS, invocation.server_address)
    if attribution:
        for key in _METRIC_ATTRIBUTION:
            if key in attribution:
                attributes[key] = admit(key, attribution[key])
        if pipeline.settings.metrics_include_user and semconv.USER_ID in attribution:
            attributes[semconv.USER_ID] = admit(semconv.USER_ID, attribution[semconv.USER_ID])
    on_cost = {key: value for key, value in attributes.items() if key not in _NOT_ON_COST}
    if cost.total is not None:
        on_cost[semconv.COST_SOURCE] = cost.source
    else:
        on_cost[semconv.PRICING_STATUS] = cost.status.value
    on_duration = attributes
    if invocation.error_type:
        on_duration = {**attributes, semconv.ERROR_TYPE: invocation.error_type}
    return MetricSets(
        attributes,
        on_duration,
        on_cost,
        {**attributes, semconv.TOKEN_TYPE: semconv.TOKEN_INPUT},
        {**attributes, semconv.TOKEN_TYPE: semconv.TOKEN_OUTPUT},
        {
            token_type: {**attributes, semconv.AIMON_TOKEN_TYPE: token_type}
            for token_type in (semconv.TOKEN_CACHE_READ, semconv.TOKEN_CACHE_WRITE, semconv.TOKEN_REASONING)
        },
    )


def _priced_apart(usage: Usage) -> Iterable[tuple[str, int]]:
    """The parts of input and output priced differently, when there are any."""
    if usage.cache_read_input_tokens:
        yield semconv.TOKEN_CACHE_READ, usage.cache_read_input_tokens
    if usage.cache_creation_input_tokens:
        yield semconv.TOKEN_CACHE_WRITE, usage.cache_creation_input_tokens
    if usage.reasoning_output_tokens:
        yield semconv.TOKEN_REASONING, usage.reasoning_output_tokens
