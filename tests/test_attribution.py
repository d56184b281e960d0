"""Tenant, user and feature from aimon_otel.attributes(...), baggage and a resolver, on spans and metrics."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import defaultdict
from collections.abc import Mapping

import openai
import pytest
from opentelemetry import baggage
from opentelemetry import context as otel_context

import aimon_otel
from aimon_otel.testing import FakeProvider
from tests.conftest import API_KEY, MESSAGES, Telemetry, make_telemetry

GPT_4O_MINI_COST = 0.000033


def chat(client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def test_context_manager_on_span_and_metrics(telemetry: Telemetry, client: openai.OpenAI) -> None:
    with aimon_otel.attributes(tenant_id="acme", user_id="u-1", feature="support_reply", team="growth"):
        chat(client)
    chat(client)
    attributed, plain = telemetry.spans()
    assert {k: attributed.attributes[k] for k in ("tenant.id", "user.id", "aimon.feature", "team")} == {
        "tenant.id": "acme",
        "user.id": "u-1",
        "aimon.feature": "support_reply",
        "team": "growth",
    }
    assert "tenant.id" not in plain.attributes
    costs = {p.attributes.get("tenant.id"): p for p in telemetry.points("gen_ai.usage.cost")}
    assert set(costs) == {"acme", None}
    assert costs["acme"].attributes["aimon.feature"] == "support_reply"
    assert "user.id" not in costs["acme"].attributes  # unbounded: only on opt-in
    tokens = [p for p in telemetry.points("gen_ai.client.token.usage") if p.attributes.get("tenant.id") == "acme"]
    assert len(tokens) == 4  # input, output, cache_read, reasoning


def test_user_on_metrics_only_when_opted_in(monkeypatch: pytest.MonkeyPatch, client: openai.OpenAI) -> None:
    monkeypatch.setenv("AIMON_METRICS_INCLUDE_USER", "true")
    telemetry = make_telemetry()
    try:
        with aimon_otel.attributes(tenant_id="acme", user_id="u-1"):
            chat(client)
    finally:
        telemetry.instrumentor.uninstrument()
    (point,) = telemetry.points("gen_ai.usage.cost")
    assert point.attributes["user.id"] == "u-1"


def test_nesting_and_decorators(telemetry: Telemetry, client: openai.OpenAI, async_client: openai.AsyncOpenAI) -> None:
    @aimon_otel.attributes(feature="summarise")
    def summarise() -> None:
        chat(client)

    @aimon_otel.attributes(feature="classify")
    async def classify() -> None:
        await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    with aimon_otel.attributes(tenant_id="acme", feature="outer"):
        summarise()
        asyncio.run(classify())
        chat(client)
    seen = [(s.attributes["tenant.id"], s.attributes["aimon.feature"]) for s in telemetry.spans()]
    assert seen == [("acme", "summarise"), ("acme", "classify"), ("acme", "outer")]


def test_baggage_from_upstream_and_explicit_wins(telemetry: Telemetry, client: openai.OpenAI) -> None:
    upstream = baggage.set_baggage("tenant.id", "from-upstream", baggage.set_baggage("aimon.feature", "search"))
    token = otel_context.attach(upstream)
    try:
        chat(client)
        with aimon_otel.attributes(tenant_id="explicit"):
            chat(client)
    finally:
        otel_context.detach(token)
    first, second = telemetry.spans()
    assert (first.attributes["tenant.id"], first.attributes["aimon.feature"]) == ("from-upstream", "search")
    assert (second.attributes["tenant.id"], second.attributes["aimon.feature"]) == ("explicit", "search")


current_tenant: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_tenant", default=None)


def resolve_tenant() -> Mapping[str, str] | None:
    tenant = current_tenant.get()
    return {"tenant_id": tenant, "feature": "resolved"} if tenant else None


def test_resolver_hook_from_env(monkeypatch: pytest.MonkeyPatch, client: openai.OpenAI) -> None:
    monkeypatch.setenv("AIMON_TENANT_RESOLVER", "tests.test_attribution:resolve_tenant")
    telemetry = make_telemetry()
    try:
        current_tenant.set("globex")
        chat(client)
        with aimon_otel.attributes(tenant_id="acme"):
            chat(client)
        current_tenant.set(None)
    finally:
        telemetry.instrumentor.uninstrument()
    first, second = telemetry.spans()
    assert (first.attributes["tenant.id"], first.attributes["aimon.feature"]) == ("globex", "resolved")
    assert second.attributes["tenant.id"] == "acme"


def test_bad_resolver_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMON_TENANT_RESOLVER", "no_such_module:fn")
    with pytest.raises(aimon_otel.AimonConfigError, match="AIMON_TENANT_RESOLVER='no_such_module:fn' cannot be loaded"):
        make_telemetry()


def test_threads_and_tasks_do_not_cross_talk(telemetry: Telemetry, fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)
    async_client = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)

    def worker(tenant: str) -> None:
        with aimon_otel.attributes(tenant_id=tenant):
            for _ in range(3):
                chat(client)

    threads = [threading.Thread(target=worker, args=(f"thread-{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    async def task(tenant: str) -> None:
        with aimon_otel.attributes(tenant_id=tenant):
            for _ in range(3):
                await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                await asyncio.sleep(0)

    async def all_tasks() -> None:
        await asyncio.gather(*(task(f"task-{i}") for i in range(8)))

    asyncio.run(all_tasks())
    per_tenant: dict[str, int] = defaultdict(int)
    for span in telemetry.spans():
        per_tenant[str(span.attributes["tenant.id"])] += 1
    assert per_tenant == {f"{kind}-{i}": 3 for kind in ("thread", "task") for i in range(8)}
    sums = {p.attributes["tenant.id"]: p for p in telemetry.points("gen_ai.usage.cost")}
    assert len(sums) == 16
    assert all(p.count == 3 and p.sum == sum([GPT_4O_MINI_COST] * 3) for p in sums.values())
