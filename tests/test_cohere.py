"""The ``cohere`` SDK's v2 client end to end: the real client over real HTTP to the fake provider's Cohere
routes, with instrumentation off and on. The price is of the billed units, not the model's own counts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from aimon_otel import BudgetExceeded
from aimon_otel.attribution.privacy import key_fingerprint
from aimon_otel.testing import FakeProvider
from aimon_otel.testing import cohere_wire as wire
from aimon_otel.testing.openai_wire import SCENARIO_HEADER
from tests.conftest import Telemetry, make_telemetry

cohere = pytest.importorskip("cohere")
KEY = "co-test-SECRET-0123456789"
SALT = "cohere-test-salt"
MESSAGES = [{"role": "user", "content": "Say hello"}]
MODEL = "command-r-plus"


def client_for(fake: FakeProvider, async_client: bool = False, scenario: str | None = None) -> Any:
    kind = cohere.AsyncClientV2 if async_client else cohere.ClientV2
    headers = {SCENARIO_HEADER: scenario} if scenario else None
    http = None
    if headers:
        import httpx

        http = httpx.Client(headers=headers)
    return kind(api_key=KEY, base_url=fake.base_url, **({"httpx_client": http} if http else {}))


def both_ways(call: Callable[[], Any]) -> tuple[Any, Any, Telemetry]:
    bare = call()
    telemetry = make_telemetry(key_salt=SALT)
    try:
        instrumented = call()
    finally:
        telemetry.instrumentor.uninstrument()
    return bare, instrumented, telemetry


def check_chat(telemetry: Telemetry, fake: FakeProvider, stream: bool) -> dict[str, Any]:
    attributes = dict(telemetry.span().attributes or {})
    assert attributes["gen_ai.provider.name"] == "cohere" and attributes["gen_ai.request.model"] == MODEL
    assert (attributes["server.address"], attributes["server.port"]) == ("127.0.0.1", fake.port)
    assert attributes["gen_ai.request.stream"] is stream
    # billed units on the span and in the price; the model's own counts beside them
    assert attributes["gen_ai.usage.input_tokens"] == wire.BILLED_INPUT
    assert attributes["gen_ai.usage.output_tokens"] == wire.BILLED_OUTPUT
    assert attributes["aimon.usage.model_input_tokens"] == wire.MODEL_INPUT
    assert attributes["aimon.usage.model_output_tokens"] == wire.MODEL_OUTPUT
    billed = PriceUsage(input_tokens=wire.BILLED_INPUT, output_tokens=wire.BILLED_OUTPUT)
    expected = float(calc_price(billed, MODEL, provider_id="cohere").total_price)
    assert attributes["gen_ai.usage.cost"] == pytest.approx(expected, abs=1e-12)
    assert attributes["gen_ai.response.finish_reasons"] == ("complete",)
    assert attributes["aimon.api_key.id"] == key_fingerprint(KEY, SALT) and KEY not in str(attributes)
    return attributes


def test_chat(fake: FakeProvider) -> None:
    bare, instrumented, telemetry = both_ways(
        lambda: client_for(fake).chat(model=MODEL, messages=MESSAGES, max_tokens=64, temperature=0.3)
    )
    assert instrumented == bare and type(instrumented) is type(bare)
    attributes = check_chat(telemetry, fake, stream=False)
    assert (attributes["gen_ai.request.max_tokens"], attributes["gen_ai.request.temperature"]) == (64, 0.3)


def test_chat_stream_yields_the_same_events(fake: FakeProvider) -> None:
    bare, instrumented, telemetry = both_ways(
        lambda: list(client_for(fake).chat_stream(model=MODEL, messages=MESSAGES))
    )
    assert instrumented == bare and bare[-1].type == "message-end"
    assert check_chat(telemetry, fake, stream=True)["aimon.stream.outcome"] == "completed"


async def test_async_chat_and_stream(fake: FakeProvider) -> None:
    telemetry = make_telemetry(key_salt=SALT)
    try:
        client = client_for(fake, async_client=True)
        await client.chat(model=MODEL, messages=MESSAGES)
        check_chat(telemetry, fake, stream=False)
        telemetry.exporter.clear()
        events = [event async for event in client.chat_stream(model=MODEL, messages=MESSAGES)]
        assert events[-1].type == "message-end"
        check_chat(telemetry, fake, stream=True)
    finally:
        telemetry.instrumentor.uninstrument()


def test_embed_is_priced_by_its_billed_tokens(fake: FakeProvider, telemetry: Telemetry) -> None:
    response = client_for(fake).embed(model="embed-v4.0", texts=["a", "b"], input_type="search_document",
                                      embedding_types=["float"])  # fmt: skip
    attributes = telemetry.span().attributes or {}
    assert attributes["gen_ai.operation.name"] == "embeddings"
    assert attributes["gen_ai.usage.input_tokens"] == wire.EMBED_BILLED
    assert attributes["gen_ai.embeddings.dimension.count"] == len(response.embeddings.float_[0])
    expected = float(
        calc_price(PriceUsage(input_tokens=wire.EMBED_BILLED), "embed-v4.0", provider_id="cohere").total_price
    )
    assert attributes["gen_ai.usage.cost"] == pytest.approx(expected, abs=1e-15)


def test_rerank_counts_search_units_and_is_never_zero_dollars(fake: FakeProvider, telemetry: Telemetry) -> None:
    client_for(fake).rerank(model="rerank-v3.5", query="q", documents=["a", "b"])
    attributes = telemetry.span().attributes or {}
    assert attributes["gen_ai.operation.name"] == "rerank" and attributes["aimon.usage.search_units"] == 1
    assert attributes["aimon.pricing.status"] == "unknown_model" and "gen_ai.usage.cost" not in attributes


def test_rate_limit_keeps_its_class(fake: FakeProvider, telemetry: Telemetry) -> None:
    with pytest.raises(cohere.errors.TooManyRequestsError):
        client_for(fake, scenario="error-429").chat(model=MODEL, messages=MESSAGES)
    assert (telemetry.span().attributes or {})["error.type"] == "TooManyRequestsError"


def test_a_block_budget_refuses_before_sending(fake: FakeProvider, tmp_path: Path) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "budgets:\n  - {name: cut-off, match: {provider: cohere}, limit_usd: 0, period: day, action: block}\n"
    )
    telemetry = make_telemetry(budgets=str(budgets))
    try:
        sent = len(fake.requests)
        with pytest.raises(BudgetExceeded):
            client_for(fake).chat(model=MODEL, messages=MESSAGES)
        with pytest.raises(BudgetExceeded):
            client_for(fake).chat_stream(model=MODEL, messages=MESSAGES)
        assert len(fake.requests) == sent
    finally:
        telemetry.instrumentor.uninstrument()


def test_a_client_made_while_instrumented_stops_tracing_after_uninstrument(fake: FakeProvider) -> None:
    """cohere's client binds its methods to itself when made, so it keeps our wrapper: after uninstrument()
    that wrapper calls straight through."""
    telemetry = make_telemetry()
    client = client_for(fake)
    client.chat(model=MODEL, messages=MESSAGES)
    telemetry.instrumentor.uninstrument()
    client.chat(model=MODEL, messages=MESSAGES)
    assert len(telemetry.spans()) == 1
