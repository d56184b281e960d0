"""Request attributes, exemplars, AIMON_ENRICH_SPANS=false, and attribution across threads and tasks."""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import inspect
import threading
from concurrent.futures import ThreadPoolExecutor

import anthropic
import openai
import pytest

import aimon_otel
from aimon_otel.testing import FakeProvider
from tests.conftest import API_KEY, MESSAGES, Telemetry, make_telemetry

HAS_NATIVE_TRACING = importlib.util.find_spec("anthropic._tracing") is not None


def test_openai_request_attributes(telemetry: Telemetry, client: openai.OpenAI) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        temperature=0.3,
        max_tokens=64,
        top_p=0.9,
        seed=7,
        n=2,
        stop=["\n\n", "END"],
        frequency_penalty=0.5,
        presence_penalty=-0.25,
    )
    newer = "max_completion_tokens" in inspect.signature(type(client.chat.completions).create).parameters
    tokens = {"max_completion_tokens": 32} if newer else {"extra_body": {"max_completion_tokens": 32}}
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stop="STOP", **tokens)
    first, second = (dict(s.attributes or {}) for s in telemetry.spans())
    assert {k: v for k, v in first.items() if k.startswith("gen_ai.request.")} == {
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.stream": False,
        "gen_ai.request.temperature": 0.3,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.seed": 7,
        "gen_ai.request.choice.count": 2,
        "gen_ai.request.stop_sequences": ("\n\n", "END"),
        "gen_ai.request.frequency_penalty": 0.5,
        "gen_ai.request.presence_penalty": -0.25,
    }
    assert second["gen_ai.request.max_tokens"] == 32
    assert second["gen_ai.request.stop_sequences"] == ("STOP",)
    assert "gen_ai.request.temperature" not in second


def test_anthropic_request_attributes(telemetry: Telemetry, fake: FakeProvider) -> None:
    kwargs = {"open_telemetry": False} if HAS_NATIVE_TRACING else {}
    client = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key=API_KEY, max_retries=0, **kwargs)
    sampling = {"temperature": 0.2, "top_p": 0.8, "top_k": 40}
    takes_sampling = "temperature" in inspect.signature(anthropic.resources.messages.Messages.create).parameters
    client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=100,
        messages=MESSAGES,
        stop_sequences=["</answer>"],
        # anthropic 2.x no longer takes sampling options as arguments; apps pass them in extra_body
        **(sampling if takes_sampling else {"extra_body": sampling}),
    )
    attributes = dict(telemetry.span().attributes or {})
    assert {k: v for k, v in attributes.items() if k.startswith("gen_ai.request.")} == {
        "gen_ai.request.model": "claude-haiku-4-5",
        "gen_ai.request.stream": False,
        "gen_ai.request.max_tokens": 100,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.top_p": 0.8,
        "gen_ai.request.top_k": 40,
        "gen_ai.request.stop_sequences": ("</answer>",),
    }


def test_exemplars_link_duration_and_cost_to_the_trace(telemetry: Telemetry, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = telemetry.span()
    data = telemetry.reader.get_metrics_data()  # one collection: exemplars are reset by each
    points = {
        metric.name: metric.data.data_points
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    for name in ("gen_ai.client.operation.duration", "gen_ai.usage.cost"):
        (point,) = points[name]
        assert [(e.trace_id, e.span_id) for e in point.exemplars] == [(span.context.trace_id, span.context.span_id)]
    # token records pass an empty context on purpose: no exemplar per token type
    assert all(not p.exemplars for p in points["gen_ai.client.token.usage"])


@pytest.mark.skipif(not HAS_NATIVE_TRACING, reason="anthropic < 2 does not trace itself")
@pytest.mark.parametrize("enrich", [True, False])
def test_native_anthropic_spans_are_priced_with_enrichment_on_or_off(enrich: bool, fake: FakeProvider) -> None:
    telemetry = make_telemetry(enrich_spans=enrich)
    try:
        client = anthropic.Anthropic(
            base_url=fake.anthropic_base_url,
            api_key=API_KEY,
            max_retries=0,
            open_telemetry={"tracer_provider": telemetry.tracer_provider},
        )
        client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES)
    finally:
        telemetry.instrumentor.uninstrument()
    spans = telemetry.spans()
    priced = [s for s in spans if "gen_ai.usage.cost" in (s.attributes or {})]
    assert len(priced) == 1 and priced[0].attributes["gen_ai.usage.cost"] == pytest.approx(0.00082, abs=1e-12)
    if enrich:  # one span: the SDK's own, priced by our span processor
        assert [s.name for s in spans] == ["anthropic.messages.create"]
    else:  # no processor of ours: our span carries the price and the SDK's span is its child
        (ours,) = [s for s in spans if s.instrumentation_scope.name == "aimon_otel"]
        (sdk,) = [s for s in spans if s is not ours]
        assert priced == [ours] and sdk.parent is not None and sdk.parent.span_id == ours.context.span_id


def test_attribution_follows_tasks_and_copied_contexts_only(telemetry: Telemetry, fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)
    async_client = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)

    def chat(label: str) -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-label": label})

    async def main() -> None:
        with aimon_otel.attributes(tenant_id="acme"):
            await asyncio.create_task(async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))
            await asyncio.to_thread(chat, "to_thread")

    asyncio.run(main())
    with aimon_otel.attributes(tenant_id="acme"):
        context = contextvars.copy_context()
        copied = threading.Thread(target=context.run, args=(chat, "copied"))
        plain = threading.Thread(target=chat, args=("plain",))
        for thread in (copied, plain):
            thread.start()
            thread.join()
        with ThreadPoolExecutor(1) as pool:
            pool.submit(chat, "pool").result()
    tenants = [s.attributes.get("tenant.id") for s in telemetry.spans()]
    # task, to_thread and a thread running a copied context carry the tenant; a plain thread or pool does not
    assert tenants == ["acme", "acme", "acme", None, None]


def test_request_numbers_read_only_numbers_and_the_first_name_wins() -> None:
    """The arguments given are looked up by name; where two name one attribute the first in the provider's
    list wins, whatever order the caller gave them in; ``extra_body`` is read when an SDK dropped the option."""
    from aimon_otel.instrumentation.providers.request import request_numbers

    names = (("max_tokens", "max"), ("max_completion_tokens", "max"), ("temperature", "t"), ("seed", "s"))
    given = {"max_completion_tokens": 200, "model": "m", "seed": True, "max_tokens": 100, "temperature": 0.5}
    assert request_numbers(given, names) == {"max": 100, "t": 0.5}  # a bool is no seed
    assert request_numbers({"max_tokens": None, "max_completion_tokens": 7}, names) == {"max": 7}
    assert request_numbers({"model": "m", "extra_body": {"temperature": 0.2}}, names) == {"t": 0.2}
    assert request_numbers({"temperature": 1, "extra_body": {"temperature": 0.2}}, names) == {"t": 1}
    assert request_numbers({"model": "m"}, names) == {}
