"""The ``groq`` SDK end to end: the real client over real HTTP to the fake provider's Groq routes
(``/openai/v1/chat/completions``), with instrumentation off and on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

groq = pytest.importorskip("groq")

from genai_prices import Usage as PriceUsage  # noqa: E402
from genai_prices import calc_price  # noqa: E402

import aimon_otel  # noqa: E402
from aimon_otel import BudgetExceeded  # noqa: E402
from aimon_otel.attribution.privacy import key_fingerprint  # noqa: E402
from aimon_otel.testing import FakeProvider  # noqa: E402
from aimon_otel.testing import openai_wire as wire  # noqa: E402
from tests.conftest import Telemetry, make_telemetry  # noqa: E402

MODEL = "llama-3.3-70b-versatile"
KEY = "gsk_test_SECRET_0123456789"
SALT = "groq-test-salt"
MESSAGES = [{"role": "user", "content": "Say hello"}]
COST = float(
    calc_price(
        PriceUsage(input_tokens=wire.PROMPT_TOKENS, output_tokens=wire.COMPLETION_TOKENS), MODEL, provider_id="groq"
    ).total_price
)


def groq_client(fake: FakeProvider, async_client: bool = False) -> Any:
    kind = groq.AsyncGroq if async_client else groq.Groq
    return kind(api_key=KEY, base_url=fake.base_url, max_retries=0)


def both_ways(call: Callable[[], Any]) -> tuple[Any, Any, Telemetry]:
    bare = call()
    telemetry = make_telemetry(key_salt=SALT)
    try:
        instrumented = call()
    finally:
        telemetry.instrumentor.uninstrument()
    return bare, instrumented, telemetry


def check(telemetry: Telemetry, fake: FakeProvider, stream: bool) -> dict[str, Any]:
    attributes = dict(telemetry.span().attributes or {})
    assert attributes["gen_ai.provider.name"] == "groq"
    assert attributes["gen_ai.request.model"] == MODEL and attributes["gen_ai.request.stream"] is stream
    assert (attributes["server.address"], attributes["server.port"]) == ("127.0.0.1", fake.port)
    assert attributes["gen_ai.usage.input_tokens"] == wire.PROMPT_TOKENS
    assert attributes["gen_ai.usage.output_tokens"] == wire.COMPLETION_TOKENS
    assert attributes["gen_ai.usage.cost"] == pytest.approx(COST, abs=1e-12)
    assert attributes.get("aimon.api_key.id") == key_fingerprint(KEY, SALT) and KEY not in str(attributes)
    return attributes


def test_chat(fake: FakeProvider) -> None:
    bare, instrumented, telemetry = both_ways(
        lambda: groq_client(fake).chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=64)
    )
    assert instrumented == bare and type(instrumented) is type(bare)
    attributes = check(telemetry, fake, stream=False)
    assert attributes["gen_ai.request.max_tokens"] == 64
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)


def test_stream_usage_comes_from_x_groq_and_nothing_is_added_or_hidden(fake: FakeProvider) -> None:
    def call() -> list[Any]:
        return list(groq_client(fake).chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))

    bare, instrumented, telemetry = both_ways(call)
    assert instrumented == bare and bare[-1].x_groq.usage.prompt_tokens == wire.PROMPT_TOKENS
    assert "stream_options" not in fake.requests[-1].body
    check(telemetry, fake, stream=True)


async def test_async_chat_and_stream(fake: FakeProvider) -> None:
    telemetry = make_telemetry(key_salt=SALT)
    try:
        client = groq_client(fake, async_client=True)
        await client.chat.completions.create(model=MODEL, messages=MESSAGES)
        check(telemetry, fake, stream=False)
        telemetry.exporter.clear()
        stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        assert [chunk async for chunk in stream][-1].choices[0].finish_reason == "stop"
        check(telemetry, fake, stream=True)
    finally:
        telemetry.instrumentor.uninstrument()


def test_rate_limit_is_raised_as_before(fake: FakeProvider, telemetry: Telemetry) -> None:
    client = groq_client(fake)
    with pytest.raises(groq.RateLimitError):
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers={wire.SCENARIO_HEADER: "error-429"}
        )
    attributes = telemetry.span().attributes or {}
    assert attributes["error.type"] == "RateLimitError" and attributes["gen_ai.provider.name"] == "groq"


def test_a_block_budget_refuses_before_sending(fake: FakeProvider, tmp_path: Path) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "budgets:\n  - {name: cut-off, match: {provider: groq}, limit_usd: 0, period: day, action: block}\n"
    )
    telemetry = make_telemetry(budgets=str(budgets))
    try:
        sent = len(fake.requests)
        with pytest.raises(BudgetExceeded):
            groq_client(fake).chat.completions.create(model=MODEL, messages=MESSAGES)
        with aimon_otel.attributes(tenant_id="acme"), pytest.raises(BudgetExceeded):
            groq_client(fake).chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        assert len(fake.requests) == sent
    finally:
        telemetry.instrumentor.uninstrument()
