"""The budget guard over the real SDKs and real HTTP: refused calls send nothing; every call is counted exactly.

Costs are hand-computed from the fake's usage (genai-prices 0.2.3, USD per million tokens):
gpt-4o-mini, input 0.15, cached input 0.075, output 0.60; the fake's chat usage is 120 input (40 of
them cached) and 30 output: 80 x 0.15 + 40 x 0.075 + 30 x 0.60 = 33 per million = $0.000033 a call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import aimon_otel
from aimon_otel import BudgetEvent, BudgetExceeded
from aimon_otel.testing import FakeProvider
from tests.conftest import API_KEY, MESSAGES, Telemetry, make_telemetry

CHAT_COST = Decimal("0.000033")
ANTHROPIC_MODEL = "claude-haiku-4-5"


def budgets_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "budgets.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture
def events() -> Iterator[list[BudgetEvent]]:
    seen: list[BudgetEvent] = []
    unsubscribe = aimon_otel.on_budget_event(seen.append)
    yield seen
    unsubscribe()


def guarded(tmp_path: Path, text: str, **settings: Any) -> Telemetry:
    return make_telemetry(budgets=budgets_file(tmp_path, text), **settings)


def chat(client: openai.OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, **kwargs)


def test_block_budget_refuses_the_call_after_the_one_that_crosses(
    tmp_path: Path, fake: FakeProvider, client: openai.OpenAI, events: list[BudgetEvent]
) -> None:
    limit = CHAT_COST * 2 - Decimal("0.000001")  # two calls cross it
    telemetry = guarded(
        tmp_path,
        f"timezone: Europe/Berlin\nbudgets:\n  - {{name: acme-daily, match: {{tenant_id: acme}}, limit_usd: {limit}, "
        "period: day, action: block, warn_at: [0.4]}\n",
    )
    try:
        with aimon_otel.attributes(tenant_id="acme"):
            sent_before = len(fake.requests)
            chat(client)
            chat(client)  # crosses the limit: its cost was unknown before it ran
            assert len(fake.requests) == sent_before + 2
            with pytest.raises(BudgetExceeded) as refused:
                chat(client)
            assert len(fake.requests) == sent_before + 2  # nothing left the process
        with aimon_otel.attributes(tenant_id="globex"):
            chat(client)  # another tenant is not refused
    finally:
        telemetry.instrumentor.uninstrument()
    error = refused.value
    assert error.budget == "acme-daily" and error.key == ""
    assert error.spent_usd == pytest.approx(float(CHAT_COST * 2), abs=1e-12) and error.spent_tokens is None
    assert error.limit == pytest.approx(float(limit))
    assert error.period_start.tzinfo is not None and str(error.period_start.tzinfo) == "Europe/Berlin"
    assert (error.period_start.hour, error.period_start.minute) == (0, 0)
    assert (error.resets_at - error.period_start).total_seconds() in (23 * 3600, 24 * 3600, 25 * 3600)
    assert "acme-daily" in str(error) and "$0.000066" in str(error) and "refused until" in str(error)
    refused_span = telemetry.spans()[2]
    assert refused_span.attributes["error.type"] == "aimon.budget_exceeded"
    assert refused_span.attributes["aimon.budget.name"] == "acme-daily"
    assert "gen_ai.usage.cost" not in refused_span.attributes
    assert refused_span.status.description and "acme-daily" in refused_span.status.description
    assert [(event.kind, event.threshold) for event in events] == [
        ("warning", 0.4),
        ("reached", 1.0),
        ("blocked", None),
    ]
    assert events[1].spent == pytest.approx(float(CHAT_COST * 2), abs=1e-12)
    # The refusal has a duration point with its error type, and is not an unpriced call.
    durations = telemetry.points("gen_ai.client.operation.duration")
    assert [p.count for p in durations if p.attributes.get("error.type") == "aimon.budget_exceeded"] == [1]
    assert telemetry.points("aimon.pricing.unpriced_calls") == []


def test_spend_is_counted_exactly_and_status_reports_it(
    tmp_path: Path, client: openai.OpenAI, events: list[BudgetEvent]
) -> None:
    telemetry = guarded(
        tmp_path,
        "budgets:\n"
        "  - {name: acme-month, match: {tenant_id: acme}, limit_usd: 1, period: month}\n"
        "  - {name: per-user, for_each: user_id, limit_tokens: 1000, period: week, warn_at: [0.5]}\n"
        "  - {name: everything, limit_usd: 100, period: {rolling: 24h}}\n",
    )
    try:
        for _ in range(7):
            with aimon_otel.attributes(tenant_id="acme", user_id="u-1"):
                chat(client)
        with aimon_otel.attributes(user_id="u-2"):
            chat(client)
        status = {(s.budget, s.key): s for s in aimon_otel.budget_status(tenant_id="acme", user_id="u-1")}
        assert set(status) == {("acme-month", ""), ("per-user", "u-1"), ("everything", "")}
        assert Decimal(str(status["acme-month", ""].spent)) == 7 * CHAT_COST
        assert Decimal(str(status["everything", ""].spent)) == 8 * CHAT_COST
        per_user = status["per-user", "u-1"]
        assert (per_user.spent, per_user.limit, per_user.unit, per_user.state) == (1050, 1000, "token", "over")
        assert status["acme-month", ""].state == "ok" and status["acme-month", ""].fraction == pytest.approx(0.000231)
        (other_user,) = [s for s in aimon_otel.budget_status(user_id="u-2") if s.budget == "per-user"]
        assert other_user.spent == 150
        assert aimon_otel.budget_status(tenant_id="globex", user_id="u-9")[0].budget == "per-user"
    finally:
        telemetry.instrumentor.uninstrument()
    # 150 tokens a call: the 4th call crosses 500 (warn_at 0.5), the 7th crosses 1000; each once.
    assert [(e.kind, e.budget, e.key, e.spent) for e in events] == [
        ("warning", "per-user", "u-1", 600.0),
        ("reached", "per-user", "u-1", 1050.0),
    ]


def test_no_tenant_matches_only_budgets_that_do_not_ask_for_one(tmp_path: Path, client: openai.OpenAI) -> None:
    telemetry = guarded(
        tmp_path,
        "budgets:\n"
        "  - {name: tenants, match: {tenant_id: '*'}, limit_usd: 0, period: day, action: block}\n"
        "  - {name: each-tenant, for_each: tenant_id, limit_usd: 0, period: day, action: block}\n"
        "  - {name: everyone, limit_usd: 1, period: day}\n",
    )
    try:
        chat(client)  # no tenant: the two tenant budgets do not apply
        with aimon_otel.attributes(tenant_id="acme"), pytest.raises(BudgetExceeded):
            chat(client)
        (everyone,) = aimon_otel.budget_status(tenant_id=None)[-1:]
        assert everyone.budget == "everyone" and Decimal(str(everyone.spent)) == CHAT_COST
    finally:
        telemetry.instrumentor.uninstrument()


def _openai_calls() -> dict[str, Callable[[FakeProvider], Any]]:
    def client(fake: FakeProvider) -> openai.OpenAI:
        return openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)

    def async_call(make: Callable[[openai.AsyncOpenAI], Any]) -> Callable[[FakeProvider], Any]:
        def run(fake: FakeProvider) -> Any:
            async def main() -> Any:
                async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0) as c:
                    return await make(c)

            return asyncio.run(main())

        return run

    return {
        "openai sync": lambda fake: chat(client(fake)),
        "openai stream": lambda fake: list(chat(client(fake), stream=True)),
        "openai raw response": lambda fake: client(fake).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES
        ),
        "openai streaming response": lambda fake: (
            client(fake)
            .chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MESSAGES)
            .__enter__()
        ),
        "openai embeddings": lambda fake: client(fake).embeddings.create(model="text-embedding-3-small", input="x"),
        "openai async": async_call(lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)),
        "openai async stream": async_call(
            lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        ),
    }


def _anthropic_calls() -> dict[str, Callable[[FakeProvider], Any]]:
    def client(fake: FakeProvider) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key=API_KEY, max_retries=0)

    def message(c: Any, **kwargs: Any) -> Any:
        return c.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=MESSAGES, **kwargs)

    def stream_manager(fake: FakeProvider) -> Any:
        with client(fake).messages.stream(model=ANTHROPIC_MODEL, max_tokens=100, messages=MESSAGES) as stream:
            return stream.get_final_message()

    def async_message(fake: FakeProvider) -> Any:
        async def main() -> Any:
            c = anthropic.AsyncAnthropic(base_url=fake.anthropic_base_url, api_key=API_KEY, max_retries=0)
            return await message(c)

        return asyncio.run(main())

    def async_stream_manager(fake: FakeProvider) -> Any:
        async def main() -> Any:
            c = anthropic.AsyncAnthropic(base_url=fake.anthropic_base_url, api_key=API_KEY, max_retries=0)
            async with c.messages.stream(model=ANTHROPIC_MODEL, max_tokens=100, messages=MESSAGES) as stream:
                return await stream.get_final_message()

        return asyncio.run(main())

    return {
        "anthropic sync": lambda fake: message(client(fake)),
        "anthropic stream": lambda fake: list(message(client(fake), stream=True)),
        "anthropic raw response": lambda fake: client(fake).messages.with_raw_response.create(
            model=ANTHROPIC_MODEL, max_tokens=100, messages=MESSAGES
        ),
        "anthropic messages.stream": stream_manager,
        "anthropic async": async_message,
        "anthropic async messages.stream": async_stream_manager,
    }


CALLS = {**_openai_calls(), **_anthropic_calls()}


@pytest.mark.parametrize("name", list(CALLS))
def test_a_refused_call_sends_no_request(
    name: str, tmp_path: Path, fake: FakeProvider, events: list[BudgetEvent], caplog: pytest.LogCaptureFixture
) -> None:
    """Sync, async, streams, raw responses, OpenAI and Anthropic: the guard runs before anything is sent."""
    telemetry = guarded(
        tmp_path,
        "budgets:\n  - {name: cut-off, match: {tenant_id: acme}, limit_usd: 0, period: month, action: block}\n",
    )
    call = CALLS[name]
    try:
        call(fake)  # no tenant: goes through
        sent = len(fake.requests)
        with aimon_otel.attributes(tenant_id="acme"), pytest.raises(BudgetExceeded) as refused:
            call(fake)
        assert len(fake.requests) == sent
    finally:
        telemetry.instrumentor.uninstrument()
    assert refused.value.budget == "cut-off" and refused.value.spent_usd == 0
    refusals = [s for s in telemetry.spans() if s.attributes.get("error.type") == "aimon.budget_exceeded"]
    assert len(refusals) == 1 and refusals[0].attributes["tenant.id"] == "acme"
    assert [event.kind for event in events] == ["blocked"]
    assert sum("call refused" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING) == 1


def test_a_bad_budgets_file_raises_in_code(tmp_path: Path) -> None:
    with pytest.raises(aimon_otel.AimonConfigError, match=r"missing\.yaml: cannot read the budgets file"):
        make_telemetry(budgets=str(tmp_path / "missing.yaml"))
    aimon_otel.AimonInstrumentor().uninstrument()
    bad = budgets_file(tmp_path, "budgets: [{name: b, limit_usd: 1, period: monthly}]\n")
    with pytest.raises(aimon_otel.AimonConfigError, match="budget 'b' \\(budgets\\[0\\]\\): key 'period'"):
        make_telemetry(budgets=bad)
    aimon_otel.AimonInstrumentor().uninstrument()


def test_zero_code_guard_refuses_under_opentelemetry_instrument(tmp_path: Path, fake: FakeProvider) -> None:
    """AIMON_BUDGETS under opentelemetry-instrument: the app sees BudgetExceeded, no request is sent."""
    import subprocess
    import sys

    from tests.conftest import zero_code_environment

    app = tmp_path / "app.py"
    app.write_text(
        "import openai, aimon_otel\n"
        "client = openai.OpenAI(max_retries=0)\n"
        "HI = [{'role': 'user', 'content': 'hi'}]\n"
        "client.chat.completions.create(model='gpt-4o-mini', messages=HI)\n"
        "with aimon_otel.attributes(tenant_id='acme'):\n"
        "    try:\n"
        "        client.chat.completions.create(model='gpt-4o-mini', messages=HI)\n"
        "    except aimon_otel.BudgetExceeded as refused:\n"
        "        print('refused:', refused.budget)\n"
    )
    file = budgets_file(
        tmp_path, "budgets: [{name: acme-cut, match: {tenant_id: acme}, limit_usd: 0, period: day, action: block}]\n"
    )
    sent = len(fake.requests)
    result = subprocess.run(
        [str(Path(sys.executable).with_name("opentelemetry-instrument")), sys.executable, str(app)],
        env=zero_code_environment(fake, AIMON_BUDGETS=file),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "refused: acme-cut" in result.stdout
    assert len(fake.requests) == sent + 1
    assert '"aimon.budget.name": "acme-cut"' in result.stdout  # the refusal's span, printed by the console exporter


def test_reserve_refuses_a_call_whose_max_tokens_could_cross_the_limit(
    tmp_path: Path, fake: FakeProvider, client: openai.OpenAI
) -> None:
    # gpt-4o-mini output is $0.60 per million: max_tokens=1000 could cost $0.0006.
    telemetry = guarded(
        tmp_path,
        "budgets:\n"
        "  - {name: r, match: {tenant_id: acme}, limit_usd: 0.00065, period: day, action: block, reserve: true}\n"
        "  - {name: t, match: {tenant_id: globex}, limit_tokens: 1000, period: day, action: block, reserve: true}\n",
    )
    try:
        with aimon_otel.attributes(tenant_id="acme"):
            chat(client, max_tokens=1000)  # $0 spent + $0.0006 reserved <= $0.00065: goes ($0.000033 spent)
            chat(client)  # no max_tokens: nothing to reserve, goes
            sent = len(fake.requests)
            with pytest.raises(BudgetExceeded) as refused:
                chat(client, max_tokens=1000)  # $0.000066 + $0.0006 > $0.00065
            assert len(fake.requests) == sent
            chat(client, max_tokens=100)  # $0.000066 + $0.00006: goes
        with aimon_otel.attributes(tenant_id="globex"):
            chat(client, max_tokens=800)  # 0 + 800 <= 1000 tokens: goes (150 tokens counted)
            with pytest.raises(BudgetExceeded):
                chat(client, max_tokens=900)  # 150 + 900 > 1000
    finally:
        telemetry.instrumentor.uninstrument()
    assert "could cost up to $0.0006 (max_tokens)" in str(refused.value)


def test_a_listener_that_raises_is_logged_once_and_never_breaks_the_call(
    tmp_path: Path, client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: BudgetEvent) -> None:
        raise RuntimeError("listener bug")

    unsubscribe = aimon_otel.on_budget_event(broken)
    telemetry = guarded(tmp_path, "budgets:\n  - {name: tiny, limit_usd: 0.00001, period: day, warn_at: [0.1]}\n")
    try:
        for _ in range(3):
            chat(client)  # warning and reached on the first call; the listener raises each time
    finally:
        unsubscribe()
        telemetry.instrumentor.uninstrument()
    assert len(telemetry.spans()) == 3
    assert sum("listener bug" in r.getMessage() for r in caplog.records) == 1


def test_a_budget_per_agent_refuses_only_that_agents_calls(
    tmp_path: Path, fake: FakeProvider, client: openai.OpenAI
) -> None:
    limit = CHAT_COST * 2 - Decimal("0.000001")
    telemetry = guarded(
        tmp_path,
        f"budgets:\n  - {{name: per-agent, for_each: agent, limit_usd: {limit}, period: day, action: block}}\n"
        f"  - {{name: support-bot, match: {{agent: support-*}}, limit_usd: 1, period: day}}\n",
    )
    try:
        with aimon_otel.attributes(agent="support-bot"):
            chat(client)
            chat(client)  # crosses
            with pytest.raises(BudgetExceeded) as refused:
                chat(client)
        with aimon_otel.attributes(agent="planner"):
            chat(client)  # another agent: its own key
        chat(client)  # no agent: a for_each budget does not count it
        status = {
            (s.budget, s.key): Decimal(str(s.spent))
            for agent in ("support-bot", "planner")
            for s in aimon_otel.budget_status(agent=agent)
        }
    finally:
        telemetry.instrumentor.uninstrument()
    assert (refused.value.budget, refused.value.key) == ("per-agent", "support-bot")
    assert status == {
        ("per-agent", "support-bot"): CHAT_COST * 2,
        ("per-agent", "planner"): CHAT_COST,
        ("support-bot", ""): CHAT_COST * 2,
    }
