"""instrument / uninstrument / re-instrument, and faults inside the instrumentation stay inside."""

from __future__ import annotations

import logging
import subprocess
import sys

import openai
import pytest

from aimon_otel import AimonInstrumentor
from aimon_otel.instrumentation.providers.openai import ChatCompletions, OpenAIEndpoint
from aimon_otel.testing import openai_wire as wire
from tests.conftest import MESSAGES, Telemetry, make_telemetry

Completions = openai.resources.chat.completions.Completions


def test_uninstrument_restores_originals_and_reinstrument_works(client: openai.OpenAI) -> None:
    original = Completions.__dict__["create"]
    telemetry = make_telemetry()
    assert Completions.__dict__["create"] is not original
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    telemetry.instrumentor.uninstrument()
    assert Completions.__dict__["create"] is original
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(telemetry.spans()) == 1

    again = make_telemetry()
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        again.instrumentor.uninstrument()
    assert len(again.spans()) == 1
    assert Completions.__dict__["create"] is original


def test_instrument_twice_wraps_once(client: openai.OpenAI) -> None:
    """However often the wrapping runs (a second instrument(), an import hook firing again): one layer,
    and uninstrument() gives back the SDK's own function (not one layer too deep: it has a ``__wrapped__``)."""
    import openai as openai_module
    import wrapt

    original = Completions.__dict__["create"]
    telemetry = make_telemetry()
    try:
        AimonInstrumentor().instrument()
        from aimon_otel.instrumentation.providers.openai import TARGETS

        instrumentor = telemetry.instrumentor
        assert instrumentor.pipeline is not None
        instrumentor._wrap_sdk(instrumentor.pipeline, openai_module, TARGETS)  # as if the import hook fired again
        assert Completions.__dict__["create"].__wrapped__ is original
        assert not isinstance(Completions.__dict__["create"].__wrapped__, wrapt.ObjectProxy)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        telemetry.instrumentor.uninstrument()
    assert Completions.__dict__["create"] is original
    assert len(telemetry.spans()) == 1
    assert sum(p.count for p in telemetry.points("gen_ai.client.operation.duration")) == 1


def test_fault_in_response_reading_is_logged_once_and_never_raised(
    telemetry: Telemetry, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("boom in extraction")

    monkeypatch.setattr(ChatCompletions, "record_response", broken)
    monkeypatch.setattr("aimon_otel.faults._reported", set())
    with caplog.at_level(logging.WARNING, logger="aimon_otel"):
        first = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        second = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert first.choices[0].message.content == second.choices[0].message.content == wire.REPLY_TEXT
    assert caplog.text.count("internal error in response") == 1
    assert len(telemetry.spans()) == 2  # spans still end


def test_fault_in_request_reading_calls_through(
    telemetry: Telemetry, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise KeyError("boom in plan")

    monkeypatch.setattr(OpenAIEndpoint, "plan", broken)
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert telemetry.spans() == []


def test_fault_in_stream_reading_keeps_the_stream(
    telemetry: Telemetry, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aimon_otel.instrumentation.providers.openai import ChunkStreamReader

    def broken(self: object, chunk: object) -> bool:
        raise ValueError("boom per chunk")

    monkeypatch.setattr(ChunkStreamReader, "on_item", broken)
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert [c.choices[0].delta.content for c in chunks[1:-1]] == ["Hello", " from", " the", " fake", " provider."]
    assert telemetry.span().attributes["aimon.stream.outcome"] == "completed"


def test_entry_point_is_registered_and_loadable() -> None:
    from importlib.metadata import distribution, entry_points

    (entry,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "aimon"]
    assert entry.load() is AimonInstrumentor
    dependencies = pytest.importorskip("opentelemetry.instrumentation.dependencies")
    if hasattr(dependencies, "get_dist_dependency_conflicts"):  # opentelemetry-instrumentation >= 0.57b0
        assert dependencies.get_dist_dependency_conflicts(distribution("aimon-otel")) is None
    assert AimonInstrumentor()._check_dependency_conflicts() is None


LAZY_PROBE = """
import sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import aimon_otel
from aimon_otel.testing import FakeProvider

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
instrumentor = aimon_otel.AimonInstrumentor()
instrumentor.instrument(tracer_provider=provider)
assert "openai" not in sys.modules and "anthropic" not in sys.modules, "instrument() imported an SDK"

import openai  # as opentelemetry-instrument runs it: instrumented first, the app imports later
with FakeProvider() as fake:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)
    client.embeddings.create(model="text-embedding-3-small", input="hi")
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    instrumentor.uninstrument()
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
print(sorted(span.name for span in exporter.get_finished_spans()))
"""


def test_sdk_imported_after_instrument_is_wrapped_when_imported() -> None:
    done = subprocess.run([sys.executable, "-c", LAZY_PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "['chat gpt-4o-mini', 'embeddings text-embedding-3-small']"


def test_a_second_instrumentor_object_can_uninstrument(client: openai.OpenAI) -> None:
    original = vars(openai.resources.chat.completions.Completions)["create"]
    make_telemetry()
    AimonInstrumentor()  # the same singleton; constructing it again must not forget what is wrapped
    assert vars(openai.resources.chat.completions.Completions)["create"] is not original
    AimonInstrumentor().uninstrument()
    assert vars(openai.resources.chat.completions.Completions)["create"] is original


def test_two_providers_one_after_the_other_do_not_leak(client: openai.OpenAI, tmp_path: object) -> None:
    """The instrumentor owns its state: after uninstrument() nothing of the first setup is used again."""
    from pathlib import Path

    import aimon_otel

    prices = Path(str(tmp_path)) / "prices.yaml"
    prices.write_text("models:\n  - {model: house-model, prices: {input_mtok: 1, output_mtok: 2}}\n")
    first = make_telemetry(pricing_file=str(prices), tenant_resolver=lambda: "first-tenant")
    client.chat.completions.create(model="house-model", messages=MESSAGES)
    assert aimon_otel.cost("openai", "house-model", 1_000_000, 0).priced  # the pricing file, while instrumented
    first.instrumentor.uninstrument()
    assert first.instrumentor.pipeline is None

    second = make_telemetry()
    try:
        client.chat.completions.create(model="house-model", messages=MESSAGES)
        assert not aimon_otel.cost("openai", "house-model", 1_000_000, 0).priced  # the old file is gone
    finally:
        second.instrumentor.uninstrument()
    (one,) = first.spans()
    (two,) = second.spans()
    assert one.attributes["tenant.id"] == "first-tenant" and "tenant.id" not in two.attributes  # resolver gone
    assert one.attributes["aimon.pricing.status"] == "priced"
    assert two.attributes["aimon.pricing.status"] == "unknown_model"
    for made in (first, second):
        assert sum(p.count for p in made.points("gen_ai.client.operation.duration")) == 1


def test_record_usage_follows_the_current_instrumentation() -> None:
    import aimon_otel

    made = make_telemetry()
    try:
        aimon_otel.record_usage(provider="openai", model="gpt-4o-mini", input_tokens=120, output_tokens=30)
    finally:
        made.instrumentor.uninstrument()
    (span,) = made.spans()
    assert span.attributes["gen_ai.usage.cost"] == pytest.approx(0.0000360, abs=1e-12)
    aimon_otel.record_usage(provider="openai", model="gpt-4o-mini", input_tokens=1, output_tokens=1)
    assert len(made.spans()) == 1  # after uninstrument(), not to the old provider
