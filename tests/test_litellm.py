"""LiteLLM's SDK end to end over real HTTP to the fake provider: through the ``openai`` SDK (which
aimon-otel also wraps) and through LiteLLM's own HTTP code (Anthropic), one span and one cost a call."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from aimon_otel import BudgetExceeded
from aimon_otel.testing import FakeProvider, anthropic_wire
from aimon_otel.testing import openai_wire as wire
from tests.conftest import Telemetry, make_telemetry

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network: LiteLLM's bundled cost map
litellm = pytest.importorskip("litellm")
MESSAGES = [{"role": "user", "content": "Say hello"}]
OPENAI_COST = float(
    calc_price(
        PriceUsage(
            input_tokens=wire.PROMPT_TOKENS, cache_read_tokens=wire.CACHED_TOKENS, output_tokens=wire.COMPLETION_TOKENS
        ),
        "gpt-4o-mini",
        provider_id="openai",
    ).total_price
)
CLAUDE_COST = float(
    calc_price(
        PriceUsage(
            input_tokens=anthropic_wire.INPUT_TOKENS
            + anthropic_wire.CACHE_READ_TOKENS
            + anthropic_wire.CACHE_WRITE_TOKENS,
            cache_read_tokens=anthropic_wire.CACHE_READ_TOKENS,
            cache_write_tokens=anthropic_wire.CACHE_WRITE_TOKENS,
            cache_write_5m_tokens=anthropic_wire.CACHE_WRITE_5M_TOKENS,
            cache_write_1h_tokens=anthropic_wire.CACHE_WRITE_1H_TOKENS,
            output_tokens=anthropic_wire.OUTPUT_TOKENS,
        ),
        "claude-haiku-4-5",
        provider_id="anthropic",
    ).total_price
)


def via_openai(fake: FakeProvider, **extra: Any) -> Any:
    return litellm.completion(
        model="openai/gpt-4o-mini", messages=MESSAGES, api_base=fake.openai_base_url, api_key="sk-litellm", **extra
    )


def via_anthropic(fake: FakeProvider, **extra: Any) -> Any:
    return litellm.completion(
        model="anthropic/claude-haiku-4-5",
        messages=MESSAGES,
        api_base=fake.anthropic_base_url,
        api_key="sk-ant-litellm",
        **extra,
    )


def both_ways(call: Callable[[], Any]) -> tuple[Any, Any, Telemetry]:
    bare = call()
    telemetry = make_telemetry()
    try:
        instrumented = call()
    finally:
        telemetry.instrumentor.uninstrument()
    return bare, instrumented, telemetry


def test_through_the_openai_sdk_one_span_and_our_price(fake: FakeProvider) -> None:
    bare, instrumented, telemetry = both_ways(lambda: via_openai(fake, max_tokens=64))
    assert (
        type(instrumented) is type(bare) and instrumented.choices[0].message.content == bare.choices[0].message.content
    )
    attributes = telemetry.span().attributes or {}  # one span: the openai SDK's call inside is not traced again
    assert (attributes["gen_ai.provider.name"], attributes["gen_ai.request.model"]) == ("openai", "gpt-4o-mini")
    assert attributes["gen_ai.request.max_tokens"] == 64
    assert attributes["gen_ai.usage.input_tokens"] == wire.PROMPT_TOKENS
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == wire.CACHED_TOKENS
    assert attributes["gen_ai.usage.cost"] == pytest.approx(OPENAI_COST, abs=1e-12)
    assert attributes["aimon.cost.reported"] == pytest.approx(instrumented._hidden_params["response_cost"])
    (point,) = telemetry.points("gen_ai.usage.cost")  # one cost recorded
    assert point.count == 1


def test_through_litellms_own_http_with_cache_writes_priced_by_ttl(fake: FakeProvider) -> None:
    bare, instrumented, telemetry = both_ways(lambda: via_anthropic(fake, max_tokens=100))
    assert instrumented.choices[0].message.content == bare.choices[0].message.content
    attributes = telemetry.span().attributes or {}
    assert (attributes["gen_ai.provider.name"], attributes["gen_ai.request.model"]) == ("anthropic", "claude-haiku-4-5")
    assert attributes["gen_ai.usage.input_tokens"] == 600
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == anthropic_wire.CACHE_WRITE_TOKENS
    assert attributes["gen_ai.usage.cost"] == pytest.approx(CLAUDE_COST, abs=1e-12)


def test_streams_hide_the_usage_chunk_they_asked_for(fake: FakeProvider) -> None:
    def call() -> list[Any]:
        return list(via_openai(fake, stream=True))

    bare, instrumented, telemetry = both_ways(call)
    assert len(instrumented) == len(bare)
    text = "".join(c.choices[0].delta.content or "" for c in instrumented if c.choices)
    assert text == "".join(c.choices[0].delta.content or "" for c in bare if c.choices)
    attributes = telemetry.span().attributes or {}
    assert attributes["aimon.stream.outcome"] == "completed" and attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.usage.cost"] == pytest.approx(OPENAI_COST, abs=1e-12)


async def test_acompletion_and_its_stream(fake: FakeProvider, telemetry: Telemetry) -> None:
    kwargs = {"model": "openai/gpt-4o-mini", "messages": MESSAGES, "api_base": fake.openai_base_url, "api_key": "sk"}
    await litellm.acompletion(**kwargs)
    stream = await litellm.acompletion(**kwargs, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks and all(chunk.choices for chunk in chunks)  # the usage chunk stays hidden
    spans = telemetry.spans()
    assert len(spans) == 2 and all(
        (s.attributes or {})["gen_ai.usage.cost"] == pytest.approx(OPENAI_COST) for s in spans
    )


def test_embedding(fake: FakeProvider, telemetry: Telemetry) -> None:
    litellm.embedding(model="openai/text-embedding-3-small", input=["hi"], api_base=fake.openai_base_url, api_key="sk")
    attributes = telemetry.span().attributes or {}
    assert attributes["gen_ai.operation.name"] == "embeddings"
    assert attributes["gen_ai.usage.input_tokens"] == wire.EMBEDDING_TOKENS


def test_errors_keep_litellms_class(fake: FakeProvider, telemetry: Telemetry) -> None:
    with pytest.raises(litellm.RateLimitError):
        via_openai(fake, extra_headers={wire.SCENARIO_HEADER: "error-429"}, num_retries=0)
    assert (telemetry.span().attributes or {})["error.type"] == "RateLimitError"


def test_a_block_budget_refuses_before_sending(fake: FakeProvider, tmp_path: Path) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "budgets:\n  - {name: cut-off, match: {provider: anthropic}, limit_usd: 0, period: day, action: block}\n"
    )
    telemetry = make_telemetry(budgets=str(budgets))
    try:
        sent = len(fake.requests)
        with pytest.raises(BudgetExceeded):
            via_anthropic(fake)
        assert len(fake.requests) == sent
        via_openai(fake)  # another provider: sent
        assert len(fake.requests) == sent + 1
    finally:
        telemetry.instrumentor.uninstrument()


def test_a_process_that_exits_right_after_instrument_does_not_hang() -> None:
    """The price data loads in a thread at instrument(); exiting mid-load once left that daemon thread holding
    the import lock, and LiteLLM's HTTP handler imports in a __del__ at shutdown: the exit hung for ever."""
    import subprocess
    import sys

    script = "import litellm, aimon_otel\naimon_otel.AimonInstrumentor().instrument(instrument=['openai'])\n"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run([sys.executable, "-c", script], env=env, timeout=120, check=False, capture_output=True)
    assert done.returncode == 0, done.stderr
