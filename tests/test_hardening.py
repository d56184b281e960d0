"""Hardening: faults inside telemetry never reach the app; concurrency never mixes tenants up."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from typing import Any

import openai
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import aimon_otel
from aimon_otel import AimonConfigError, AimonInstrumentor, PricingEngine
from aimon_otel.budgets import load_budgets
from aimon_otel.pricing import load_overrides
from aimon_otel.testing import FakeProvider
from aimon_otel.testing import openai_wire as wire
from tests.conftest import API_KEY, MESSAGES, Telemetry

GPT_4O_MINI_COST = 0.000033


class RaisingProcessor(SpanProcessor):
    """A span processor that fails where the SDK calls it from inside our call path."""

    def __init__(self, on: str) -> None:
        self.on = on

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.on == "start":
            raise RuntimeError("processor broke on start")

    def on_end(self, span: ReadableSpan) -> None:
        if self.on == "end":
            raise RuntimeError("processor broke on end")


def instrumented(processor: SpanProcessor) -> tuple[AimonInstrumentor, InMemoryMetricReader]:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    reader = InMemoryMetricReader()
    instrumentor = AimonInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[reader]))
    return instrumentor, reader


@pytest.mark.parametrize("on", ["start", "end"])
def test_a_failing_span_processor_never_reaches_the_app(
    on: str, client: openai.OpenAI, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK calls processors synchronously inside ``start_span``/``end``: our guard is what stands between."""
    from aimon_otel import faults

    monkeypatch.setattr(faults, "_reported", set())  # faults are logged once per process; start afresh
    bare = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).model_dump()
    bare_chunks = [
        c.model_dump() for c in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    ]
    instrumentor, reader = instrumented(RaisingProcessor(on))
    try:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).model_dump()
        chunks = [
            c.model_dump() for c in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        ]
    finally:
        instrumentor.uninstrument()
    assert (completion["choices"], chunks[-1]["choices"]) == (bare["choices"], bare_chunks[-1]["choices"])
    assert len(chunks) == len(bare_chunks)
    assert "internal error" in caplog.text
    if on == "end":  # metrics are recorded before the span ends: a broken processor loses only the span
        data = reader.get_metrics_data()
        durations = [
            p
            for rm in (data.resource_metrics if data else [])
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "gen_ai.client.operation.duration"
            for p in m.data.data_points
        ]
        assert sum(p.count for p in durations) == 2


def test_otlp_exporter_to_a_closed_port(client: openai.OpenAI) -> None:
    otlp = pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    exporter = otlp.OTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces", timeout=1)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    instrumentor = AimonInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=MeterProvider())
    try:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
    assert completion.id == "chatcmpl-fake-1"


def test_pricing_that_raises_is_contained(
    telemetry: Telemetry, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("pricing bug")

    monkeypatch.setattr(PricingEngine, "price", broken)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == wire.REPLY_TEXT
    span = telemetry.span()
    assert "gen_ai.usage.cost" not in span.attributes
    assert span.attributes["gen_ai.usage.input_tokens"] == wire.PROMPT_TOKENS


ODD_CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    (("gpt-4o-mini",), {"messages": MESSAGES}),  # positional where the SDK takes keywords only
    ((), {"model": 123, "messages": MESSAGES}),  # a model that is not a string
    ((), {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": "many", "temperature": [1]}),
    ((), {"model": "gpt-4o-mini", "messages": iter(MESSAGES)}),  # a generator the SDK may consume once
    ((), {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": "yes"}),
    ((), {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True, "stream_options": "on"}),
    ((), {"model": "gpt-4o-mini", "messages": MESSAGES, "extra_body": {"surprise": {"nested": True}}}),
    ((), {"messages": MESSAGES}),  # a required argument missing
]


def outcome_of(client: openai.OpenAI, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What the app sees: the result's content, or the exception's type and message."""
    if isinstance(kwargs.get("messages"), type(iter([]))):
        kwargs = {**kwargs, "messages": iter(MESSAGES)}
    try:
        result = client.chat.completions.create(*args, **kwargs)
    except Exception as exc:
        return type(exc), str(exc)
    if isinstance(result, openai.Stream):
        return [c.model_dump(exclude={"id", "created"}) for c in result]
    return result.model_dump(exclude={"id", "created"})


@pytest.mark.parametrize(("args", "kwargs"), ODD_CALLS)
def test_odd_calls_behave_exactly_as_without_instrumentation(
    client: openai.OpenAI, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Whatever an app (or a future SDK) passes, the call returns or raises the same as it would bare."""
    from tests.conftest import make_telemetry

    bare = outcome_of(client, args, kwargs)
    telemetry = make_telemetry()
    try:
        instrumented = outcome_of(client, args, kwargs)
    finally:
        telemetry.instrumentor.uninstrument()
    assert instrumented == bare


@pytest.mark.parametrize(
    "usage",
    [
        {},
        {"prompt_tokens": None, "completion_tokens": None},
        {"prompt_tokens": "many", "completion_tokens": 3},
        {"prompt_tokens": 12, "completion_tokens": -1},
        {"prompt_tokens": 12.5, "completion_tokens": 3},
        {"prompt_tokens": 12, "completion_tokens": True},
        {"prompt_tokens": 12, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": -5}},
    ],
)
def test_malformed_usage_is_invalid_never_zero(
    telemetry: Telemetry,
    fake: FakeProvider,
    usage: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(wire, "chat_usage", lambda cost=None: usage)
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)
    for _ in range(2):
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert completion.choices[0].message.content == wire.REPLY_TEXT
    for span in telemetry.spans():
        assert span.attributes["aimon.pricing.status"] == "invalid_usage"
        assert "gen_ai.usage.cost" not in span.attributes and "aimon.pricing.model" not in span.attributes
    unpriced = telemetry.points("aimon.pricing.unpriced_calls")
    assert [(p.attributes["aimon.pricing.status"], p.value) for p in unpriced] == [("invalid_usage", 2)]
    assert telemetry.points("gen_ai.usage.cost") == []
    warnings = [r for r in caplog.records if "invalid_usage" in r.getMessage()]
    assert len(warnings) == 1 and "gpt-4o-mini" in warnings[0].getMessage()  # once per model, naming it


def test_no_usage_at_all_is_no_usage(telemetry: Telemetry, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "chat_usage", lambda cost=None: None)
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = telemetry.span()
    assert span.attributes["aimon.pricing.status"] == "no_usage"
    assert "aimon.pricing.model" not in span.attributes


def test_64_threads_and_1000_tasks_exact_per_tenant(telemetry: Telemetry, fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)

    def worker(tenant: str) -> None:
        with aimon_otel.attributes(tenant_id=tenant):
            for _ in range(4):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    threads = [threading.Thread(target=worker, args=(f"thread-{i}",)) for i in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    async def tasks() -> None:
        limit = asyncio.Semaphore(100)  # the fake provider is a thread per connection
        async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0) as async_client:

            async def task(tenant: str) -> None:
                with aimon_otel.attributes(tenant_id=tenant):
                    async with limit:
                        await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

            await asyncio.gather(*(task(f"task-{i % 50}") for i in range(1000)))

    asyncio.run(tasks())
    spans = telemetry.spans()
    assert len(spans) == 64 * 4 + 1000
    per_tenant: dict[str, int] = defaultdict(int)
    for span in spans:
        per_tenant[str(span.attributes["tenant.id"])] += 1
    assert per_tenant == {**{f"thread-{i}": 4 for i in range(64)}, **{f"task-{i}": 20 for i in range(50)}}
    costs = {p.attributes["tenant.id"]: p for p in telemetry.points("gen_ai.usage.cost")}
    assert all(
        costs[t].count == n and costs[t].sum == pytest.approx(n * GPT_4O_MINI_COST, rel=1e-12)
        for t, n in per_tenant.items()
    )
    inputs = {
        p.attributes["tenant.id"]: p.sum
        for p in telemetry.points("gen_ai.client.token.usage")
        if p.attributes["gen_ai.token.type"] == "input"
    }
    assert inputs == {t: n * wire.PROMPT_TOKENS for t, n in per_tenant.items()}


KEYS = [
    "aliases",
    "models",
    "multipliers",
    "model",
    "target",
    "provider",
    "prices",
    "input_mtok",
    "output_mtok",
    "effective_from",
    "effective_to",
    "factor",
    "budgets",
    "timezone",
    "name",
    "match",
    "for_each",
    "tenant_id",
    "provider",
    "limit_usd",
    "limit_tokens",
    "period",
    "rolling",
    "warn_at",
    "action",
    "notify",
    "reserve",
    "x",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**9) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(KEYS), children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=json_values)
def test_fuzzed_pricing_and_budget_files_fail_clearly(document: Any, tmp_path: Any) -> None:
    """Any document either loads or raises AimonConfigError naming the file; nothing else escapes."""
    for name, load in (("prices.yaml", load_overrides), ("budgets.yaml", load_budgets)):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(document))
        try:
            load(path)
        except AimonConfigError as exc:
            assert str(path) in str(exc)
