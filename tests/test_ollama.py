"""The ``ollama`` SDK end to end: the real client over real HTTP (NDJSON streams) to the fake provider's
Ollama routes, with instrumentation off and on; module functions (``ollama.chat``) included."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aimon_otel import BudgetExceeded
from aimon_otel.testing import FakeProvider
from aimon_otel.testing import ollama_wire as wire
from tests.conftest import Telemetry, make_telemetry

ollama = pytest.importorskip("ollama")
MODEL = "llama3.2"
MESSAGES = [{"role": "user", "content": "Say hello"}]


def client_for(fake: FakeProvider, async_client: bool = False) -> Any:
    return (ollama.AsyncClient if async_client else ollama.Client)(host=fake.base_url)


def both_ways(call: Callable[[], Any], **settings: Any) -> tuple[Any, Any, Telemetry]:
    bare = call()
    telemetry = make_telemetry(**settings)
    try:
        instrumented = call()
    finally:
        telemetry.instrumentor.uninstrument()
    return bare, instrumented, telemetry


def check(telemetry: Telemetry, fake: FakeProvider, operation: str, stream: bool = False) -> dict[str, Any]:
    attributes = dict(telemetry.span().attributes or {})
    assert attributes["gen_ai.provider.name"] == "ollama" and attributes["gen_ai.request.model"] == MODEL
    assert attributes["gen_ai.operation.name"] == operation
    assert (attributes["server.address"], attributes["server.port"]) == ("127.0.0.1", fake.port)
    if operation != "embeddings":
        assert attributes["gen_ai.request.stream"] is stream
        assert attributes["gen_ai.usage.input_tokens"] == wire.PROMPT_EVAL_COUNT
        assert attributes["gen_ai.usage.output_tokens"] == wire.EVAL_COUNT
        assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    # a local model: no price, and never $0
    assert attributes["aimon.pricing.status"] == "unknown_model" and "gen_ai.usage.cost" not in attributes
    return attributes


def test_chat(fake: FakeProvider) -> None:
    options = {"num_predict": 64, "temperature": 0.2}
    bare, instrumented, telemetry = both_ways(
        lambda: client_for(fake).chat(model=MODEL, messages=MESSAGES, options=options)
    )
    assert instrumented == bare and type(instrumented) is type(bare)
    attributes = check(telemetry, fake, "chat")
    assert (attributes["gen_ai.request.max_tokens"], attributes["gen_ai.request.temperature"]) == (64, 0.2)


def test_chat_and_generate_streams_yield_the_same_chunks(fake: FakeProvider) -> None:
    bare, instrumented, telemetry = both_ways(
        lambda: list(client_for(fake).chat(model=MODEL, messages=MESSAGES, stream=True))
    )
    assert instrumented == bare and "".join(c.message.content for c in bare) == wire.REPLY
    assert check(telemetry, fake, "chat", stream=True)["aimon.stream.outcome"] == "completed"
    bare, instrumented, telemetry = both_ways(
        lambda: list(client_for(fake).generate(model=MODEL, prompt="Hi", stream=True))
    )
    assert instrumented == bare
    check(telemetry, fake, "text_completion", stream=True)


def test_module_functions_are_covered_and_restored(fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    default = ollama.chat.__self__  # the client ollama.chat was bound to at import
    monkeypatch.setattr(default, "_client", client_for(fake)._client)  # its HTTP client, pointed at the fake
    telemetry = make_telemetry()
    try:
        ollama.chat(model=MODEL, messages=MESSAGES)
        ollama.generate(model=MODEL, prompt="Hi")
    finally:
        telemetry.instrumentor.uninstrument()
    assert [s.name for s in telemetry.spans()] == [f"chat {MODEL}", f"text_completion {MODEL}"]
    ollama.chat(model=MODEL, messages=MESSAGES)  # unwrapped again: no new span
    assert len(telemetry.spans()) == 2


def test_embed_and_legacy_embeddings(fake: FakeProvider, telemetry: Telemetry) -> None:
    response = client_for(fake).embed(model=MODEL, input=["a", "b"])
    attributes = check(telemetry, fake, "embeddings")
    assert attributes["gen_ai.usage.input_tokens"] == wire.EMBED_COUNT
    assert attributes["gen_ai.embeddings.dimension.count"] == len(response.embeddings[0])
    telemetry.exporter.clear()
    client_for(fake).embeddings(model=MODEL, prompt="a")
    legacy = telemetry.span().attributes or {}
    assert legacy["gen_ai.operation.name"] == "embeddings" and legacy["gen_ai.embeddings.dimension.count"] == 3
    assert legacy["aimon.pricing.status"] == "no_usage" and "gen_ai.usage.cost" not in legacy  # no counts sent


async def test_async_chat_and_stream(fake: FakeProvider, telemetry: Telemetry) -> None:
    client = client_for(fake, async_client=True)
    await client.chat(model=MODEL, messages=MESSAGES)
    check(telemetry, fake, "chat")
    telemetry.exporter.clear()
    chunks = [chunk async for chunk in await client.chat(model=MODEL, messages=MESSAGES, stream=True)]
    assert chunks[-1].done
    check(telemetry, fake, "chat", stream=True)


def test_a_pricing_file_prices_a_local_model(fake: FakeProvider, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        f"models:\n  - model: {MODEL}\n    provider: ollama\n    prices: [{{input_mtok: 0.1, output_mtok: 0.4}}]\n"
    )
    telemetry = make_telemetry(pricing_file=str(prices))
    try:
        client_for(fake).chat(model=MODEL, messages=MESSAGES)
    finally:
        telemetry.instrumentor.uninstrument()
    attributes = telemetry.span().attributes or {}
    expected = (wire.PROMPT_EVAL_COUNT * 0.1 + wire.EVAL_COUNT * 0.4) / 1e6
    assert attributes["gen_ai.usage.cost"] == pytest.approx(expected, abs=1e-15)


def test_errors_keep_their_class_and_name_their_status(fake: FakeProvider, telemetry: Telemetry) -> None:
    with pytest.raises(ollama.ResponseError) as raised:
        client_for(fake).chat(model="missing-model", messages=MESSAGES)
    assert raised.value.status_code == 404
    assert (telemetry.span().attributes or {})["error.type"] == "404"


def test_a_block_budget_refuses_before_sending(fake: FakeProvider, tmp_path: Path) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "budgets:\n  - {name: local-tokens, match: {provider: ollama}, limit_tokens: 30, period: day, action: block}\n"
    )
    telemetry = make_telemetry(budgets=str(budgets))
    try:
        client = client_for(fake)
        client.chat(model=MODEL, messages=MESSAGES)  # 37 tokens: over the 30 from now on
        sent = len(fake.requests)
        with pytest.raises(BudgetExceeded):
            client.chat(model=MODEL, messages=MESSAGES, stream=True)
        assert len(fake.requests) == sent
    finally:
        telemetry.instrumentor.uninstrument()
