"""Hardening: faults inside telemetry never reach the app; concurrency never mixes tenants up."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import openai
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult

import aimon_otel
from aimon_otel import AimonConfigError, AimonInstrumentor, PricingEngine
from aimon_otel.budgets import load_budgets
from aimon_otel.pricing import load_overrides
from aimon_otel.testing import FakeProvider
from aimon_otel.testing import openai_wire as wire
from tests.conftest import API_KEY, MESSAGES, Telemetry

GPT_4O_MINI_COST = 0.000033


class RaisingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise RuntimeError("exporter is broken")


class HangingExporter(SpanExporter):
    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(30)
        return SpanExportResult.SUCCESS


def instrumented(exporter: SpanExporter, batch: bool) -> tuple[AimonInstrumentor, InMemoryMetricReader]:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    instrumentor = AimonInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=MeterProvider(metric_readers=[reader]))
    return instrumentor, reader


def test_raising_exporter_does_not_reach_the_app(client: openai.OpenAI) -> None:
    instrumentor, reader = instrumented(RaisingExporter(), batch=False)
    try:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    finally:
        instrumentor.uninstrument()
    assert completion.choices[0].message.content == wire.REPLY_TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert reader.get_metrics_data() is not None  # metrics were still recorded


def test_hanging_exporter_does_not_hold_up_calls(client: openai.OpenAI) -> None:
    exporter = HangingExporter()
    instrumentor, _ = instrumented(exporter, batch=True)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # warm the connection
        started = time.perf_counter()
        for _ in range(20):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        took = time.perf_counter() - started
    finally:
        exporter.release.set()
        instrumentor.uninstrument()
    assert took < 10, f"20 calls took {took:.1f}s with a hanging exporter"


def test_otlp_exporter_to_a_closed_port(client: openai.OpenAI) -> None:
    otlp = pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    exporter = otlp.OTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces", timeout=1)
    instrumentor, _ = instrumented(exporter, batch=True)
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


def test_changed_sdk_signature_falls_back_to_calling_through(
    telemetry: Telemetry, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A future SDK passing what we do not expect (positional args, no _client): the call still works."""
    from aimon_otel.providers.openai import OpenAIEndpoint

    real_plan = OpenAIEndpoint.plan

    def plan_on_new_sdk(self: OpenAIEndpoint, instance: Any, kwargs: dict[str, Any]) -> Any:
        return real_plan(self, object(), kwargs)  # an instance without `_client`

    monkeypatch.setattr(OpenAIEndpoint, "plan", plan_on_new_sdk)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == wire.REPLY_TEXT
    assert telemetry.spans() == []


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
    "default",
    "tenant",
    "period",
    "amount_usd",
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
