"""The ``mistralai`` SDK end to end: the real client over real HTTP to the fake provider's Mistral routes
(the SDK's server URL pointed at ``/mistral``), with instrumentation off and on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from aimon_otel import BudgetExceeded
from aimon_otel.attribution.privacy import key_fingerprint
from aimon_otel.testing import FakeProvider
from aimon_otel.testing import openai_wire as wire
from tests.conftest import Telemetry, make_telemetry

pytest.importorskip("mistralai")
try:  # mistralai 2.x and later
    from mistralai.client import Mistral
    from mistralai.client.errors import SDKError
except ImportError:  # mistralai 1.x
    from mistralai import Mistral  # type: ignore[attr-defined,no-redef]
    from mistralai.models import SDKError  # type: ignore[no-redef]

KEY = "mistral-test-SECRET-0123456789"
SALT = "mistral-test-salt"
MESSAGES = [{"role": "user", "content": "Say hello"}]
USAGE = PriceUsage(input_tokens=wire.PROMPT_TOKENS, output_tokens=wire.COMPLETION_TOKENS)


def cost(model: str, usage: PriceUsage = USAGE) -> float:
    return float(calc_price(usage, model, provider_id="mistral").total_price)


def client_for(fake: FakeProvider, scenario: str | None = None) -> Any:
    headers = {wire.SCENARIO_HEADER: scenario} if scenario else {}
    return Mistral(api_key=KEY, server_url=f"{fake.base_url}/mistral", client=httpx.Client(headers=headers))


def both_ways(call: Callable[[], Any]) -> tuple[Any, Any, Telemetry]:
    bare = call()
    telemetry = make_telemetry(key_salt=SALT)
    try:
        instrumented = call()
    finally:
        telemetry.instrumentor.uninstrument()
    return bare, instrumented, telemetry


def check(telemetry: Telemetry, fake: FakeProvider, model: str, stream: bool = False) -> dict[str, Any]:
    attributes = dict(telemetry.span().attributes or {})
    assert attributes["gen_ai.provider.name"] == "mistral_ai" and attributes["gen_ai.request.model"] == model
    assert (attributes["server.address"], attributes["server.port"]) == ("127.0.0.1", fake.port)
    assert attributes["aimon.api_key.id"] == key_fingerprint(KEY, SALT) and KEY not in str(attributes)
    if attributes["gen_ai.operation.name"] == "chat":
        assert attributes["gen_ai.request.stream"] is stream
        assert attributes["gen_ai.usage.input_tokens"] == wire.PROMPT_TOKENS
        assert attributes["gen_ai.usage.output_tokens"] == wire.COMPLETION_TOKENS
        assert attributes["gen_ai.usage.cost"] == pytest.approx(cost(model), abs=1e-12)
    return attributes


def test_chat_complete(fake: FakeProvider) -> None:
    bare, instrumented, telemetry = both_ways(
        lambda: client_for(fake).chat.complete(model="mistral-small-latest", messages=MESSAGES, max_tokens=64)
    )
    assert instrumented == bare and type(instrumented) is type(bare)
    attributes = check(telemetry, fake, "mistral-small-latest")
    assert attributes["gen_ai.request.max_tokens"] == 64
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)


def test_chat_stream_yields_the_same_events(fake: FakeProvider) -> None:
    def call() -> list[Any]:
        return list(client_for(fake).chat.stream(model="mistral-large-latest", messages=MESSAGES))

    bare, instrumented, telemetry = both_ways(call)
    assert instrumented == bare and bare[-1].data.usage.prompt_tokens == wire.PROMPT_TOKENS
    attributes = check(telemetry, fake, "mistral-large-latest", stream=True)
    assert attributes["aimon.stream.outcome"] == "completed"


def test_fim_and_embeddings(fake: FakeProvider) -> None:
    telemetry = make_telemetry(key_salt=SALT)
    try:
        client = client_for(fake)
        client.fim.complete(model="codestral-latest", prompt="def add(a, b):", suffix="return c")
        check(telemetry, fake, "codestral-latest")
        telemetry.exporter.clear()
        response = client.embeddings.create(model="mistral-embed", inputs=["observability"])
        attributes = check(telemetry, fake, "mistral-embed")
    finally:
        telemetry.instrumentor.uninstrument()
    assert attributes["gen_ai.operation.name"] == "embeddings"
    assert attributes["gen_ai.embeddings.dimension.count"] == len(response.data[0].embedding)
    embedded = PriceUsage(input_tokens=wire.EMBEDDING_TOKENS, output_tokens=0)
    assert attributes["gen_ai.usage.cost"] == pytest.approx(cost("mistral-embed", embedded), abs=1e-12)


async def test_async_complete_and_stream(fake: FakeProvider) -> None:
    telemetry = make_telemetry(key_salt=SALT)
    try:
        client = client_for(fake)
        await client.chat.complete_async(model="mistral-small-latest", messages=MESSAGES)
        check(telemetry, fake, "mistral-small-latest")
        telemetry.exporter.clear()
        events = await client.chat.stream_async(model="mistral-small-latest", messages=MESSAGES)
        assert [event async for event in events][-1].data.choices[0].finish_reason == "stop"
        check(telemetry, fake, "mistral-small-latest", stream=True)
    finally:
        telemetry.instrumentor.uninstrument()


def test_http_errors_keep_their_class_and_name_their_status(fake: FakeProvider, telemetry: Telemetry) -> None:
    with pytest.raises(SDKError) as raised:
        client_for(fake, "error-429").chat.complete(model="mistral-small-latest", messages=MESSAGES)
    assert raised.value.status_code == 429
    assert (telemetry.span().attributes or {})["error.type"] == "429"  # counted by the rate-limit alert


def test_a_block_budget_refuses_before_sending(fake: FakeProvider, tmp_path: Path) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "budgets:\n  - {name: cut-off, match: {provider: mistral_ai}, limit_usd: 0, period: day, action: block}\n"
    )
    telemetry = make_telemetry(budgets=str(budgets))
    try:
        sent = len(fake.requests)
        with pytest.raises(BudgetExceeded):
            client_for(fake).chat.complete(model="mistral-small-latest", messages=MESSAGES)
        with pytest.raises(BudgetExceeded):
            client_for(fake).chat.stream(model="mistral-small-latest", messages=MESSAGES)
        assert len(fake.requests) == sent
    finally:
        telemetry.instrumentor.uninstrument()
