"""Tenant, user and feature from aimon_otel.attributes(...), baggage and a resolver, on spans and metrics."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping

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
    with aimon_otel.attributes(tenant_id="acme", user_id="u-1", feature="support_reply", extra={"team": "growth"}):
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
    assert len(tokens) == 2  # input, output (the parts priced apart are aimon.usage.tokens)


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


def test_bad_resolver_in_code_is_a_clear_error() -> None:
    with pytest.raises(aimon_otel.AimonConfigError, match="'no_such_module:fn' cannot be loaded"):
        make_telemetry(tenant_resolver="no_such_module:fn")


def test_bad_resolver_in_the_environment_is_logged_and_calls_go_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fake: FakeProvider
) -> None:
    monkeypatch.setenv("AIMON_TENANT_RESOLVER", "no_such_module:fn")
    telemetry = make_telemetry()
    try:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)
        with aimon_otel.attributes(tenant_id="acme"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        telemetry.instrumentor.uninstrument()
    assert telemetry.span().attributes["tenant.id"] == "acme"
    (warning,) = [r.getMessage() for r in caplog.records if "no_such_module" in r.getMessage()]
    assert "AIMON_TENANT_RESOLVER='no_such_module:fn' cannot be loaded" in warning and "module:function" in warning


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


resolver_calls: list[int] = []
resolver_result: list[object] = [None]


def counting_resolver() -> object:
    resolver_calls.append(1)
    value = resolver_result[0]
    if isinstance(value, Exception):
        raise value
    return value


@pytest.fixture
def resolver_telemetry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Telemetry]:
    monkeypatch.setenv("AIMON_TENANT_RESOLVER", "tests.test_attribution:counting_resolver")
    resolver_calls.clear()
    made = make_telemetry()
    yield made
    made.instrumentor.uninstrument()


def test_resolver_is_called_only_when_a_value_is_missing(resolver_telemetry: Telemetry, client: openai.OpenAI) -> None:
    resolver_result[0] = {"tenant_id": "resolved", "user_id": "r-user", "feature": "r-feature"}
    with aimon_otel.attributes(tenant_id="acme", user_id="u-1", feature="chat"):
        chat(client)
    assert resolver_calls == []  # everything was given: the resolver is not paid for
    upstream = baggage.set_baggage("tenant.id", "from-baggage")
    token = otel_context.attach(upstream)
    try:
        with aimon_otel.attributes(feature="explicit"):
            chat(client)
    finally:
        otel_context.detach(token)
    assert resolver_calls == [1]
    full, mixed = resolver_telemetry.spans()
    assert (full.attributes["tenant.id"], full.attributes["user.id"]) == ("acme", "u-1")
    # attributes(...) beats baggage beats the resolver, key by key
    assert mixed.attributes["aimon.feature"] == "explicit"
    assert mixed.attributes["tenant.id"] == "from-baggage"
    assert mixed.attributes["user.id"] == "r-user"


@pytest.mark.parametrize("bad", [42, ["acme"], {"tenant_id": 7}, RuntimeError("resolver bug")])
def test_bad_resolver_results_are_logged_once_and_calls_recorded(
    bad: object, resolver_telemetry: Telemetry, client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    resolver_result[0] = bad
    for _ in range(3):
        chat(client)
    resolver_result[0] = None
    spans = resolver_telemetry.spans()
    assert len(spans) == 3 and all("tenant.id" not in s.attributes for s in spans)
    assert sum(p.count for p in resolver_telemetry.points("gen_ai.client.operation.duration")) == 3
    assert sum(p.count for p in resolver_telemetry.points("gen_ai.usage.cost")) == 3
    mentions = [r for r in caplog.records if "resolver" in r.getMessage()]
    assert len(mentions) == 1, [r.getMessage() for r in mentions]


def test_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        aimon_otel.attributes(tenant="acme")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        aimon_otel.attributes(extra=["team"])  # type: ignore[arg-type]


def test_long_and_control_character_values_are_cut_and_cleaned(
    telemetry: Telemetry, client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    from aimon_otel.attribution.context import MAX_VALUE_CHARS

    long_tenant = "t" * 500
    with aimon_otel.attributes(tenant_id=long_tenant, feature="sum\x00mar\nise\x1b[31m"):
        chat(client)
        chat(client)
    span = telemetry.spans()[0]
    assert span.attributes["tenant.id"] == "t" * MAX_VALUE_CHARS
    assert span.attributes["aimon.feature"] == "summarise[31m"
    (cost,) = telemetry.points("gen_ai.usage.cost")
    assert cost.attributes["tenant.id"] == "t" * MAX_VALUE_CHARS and cost.attributes["aimon.feature"] == "summarise[31m"
    warnings = [r.getMessage() for r in caplog.records if "cut or cleaned" in r.getMessage()]
    assert len(warnings) == 2  # one per attribute, not one per call


def test_agent_on_spans_and_metrics_conversation_on_spans_only(telemetry: Telemetry, client: openai.OpenAI) -> None:
    with aimon_otel.attributes(tenant_id="acme", agent="support-bot", conversation_id="c-123"):
        chat(client)
    (span,) = telemetry.spans()
    assert span.attributes["gen_ai.agent.name"] == "support-bot"
    assert span.attributes["gen_ai.conversation.id"] == "c-123"
    for metric in ("gen_ai.usage.cost", "gen_ai.client.token.usage", "gen_ai.client.operation.duration"):
        for point in telemetry.points(metric):
            assert point.attributes["gen_ai.agent.name"] == "support-bot", metric
            assert "gen_ai.conversation.id" not in point.attributes, metric  # one series per conversation: no


def test_agent_and_conversation_from_baggage_and_a_resolver(
    monkeypatch: pytest.MonkeyPatch, client: openai.OpenAI
) -> None:
    monkeypatch.setenv("AIMON_TENANT_RESOLVER", "tests.test_attribution:resolve_agent")
    telemetry = make_telemetry()
    try:
        upstream = baggage.set_baggage(
            "gen_ai.agent.name", "planner", baggage.set_baggage("gen_ai.conversation.id", "c-9")
        )
        token = otel_context.attach(upstream)
        try:
            chat(client)
            with aimon_otel.attributes(agent="writer"):
                chat(client)
        finally:
            otel_context.detach(token)
        chat(client)
    finally:
        telemetry.instrumentor.uninstrument()
    seen = [
        (s.attributes.get("gen_ai.agent.name"), s.attributes.get("gen_ai.conversation.id"), s.attributes["tenant.id"])
        for s in telemetry.spans()
    ]
    # baggage, then attributes(...) over baggage; the resolver fills what neither gave
    assert seen == [("planner", "c-9", "t-r"), ("writer", "c-9", "t-r"), ("resolved-agent", "c-r", "t-r")]


def resolve_agent() -> Mapping[str, str]:
    return {"tenant_id": "t-r", "agent": "resolved-agent", "conversation_id": "c-r"}
