"""The compiled fast path prices exactly as genai-prices' own ``calc_price``, for every model it knows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from genai_prices import Usage as GenaiUsage
from genai_prices.data import providers as genai_providers
from hypothesis import given, settings
from hypothesis import strategies as st

from aimon_otel.pricing.compiled import InvalidUsageError, compile_model_price

ALL_MODELS = [(provider, model) for provider in genai_providers for model in provider.models]
WHEN = [datetime(2024, 6, 1, 3, 0, tzinfo=UTC), datetime(2026, 11, 22, 18, 0, tzinfo=UTC)]
CONTEXTS: list[dict[str, str] | None] = [
    None,
    {"service_tier": "priority"},
    {"service_tier": "flex"},
    {"processing": "batch"},
]


def reference(provider: Any, model: Any, counts: dict[str, int], when: datetime, context: dict[str, str] | None) -> Any:
    try:
        return model.calc_price(GenaiUsage(**counts), provider, genai_request_timestamp=when, price_context=context)
    except ValueError:
        return None


def ours(provider: Any, model: Any, counts: dict[str, int], when: datetime, context: dict[str, str] | None) -> Any:
    own = any(model is m for m in provider.models)
    compiled = compile_model_price(model.get_prices(when, context if own else None))
    try:
        return compiled.parts(counts)
    except InvalidUsageError:
        return None


def check(provider: Any, model: Any, counts: dict[str, int], when: datetime, context: dict[str, str] | None) -> None:
    expected = reference(provider, model, counts, when, context)
    got = ours(provider, model, counts, when, context)
    if expected is None:
        assert got is None, (provider.id, model.id, counts)
        return
    assert got is not None, (provider.id, model.id, counts)
    assert got.total == expected.total_price, (provider.id, model.id, counts, when, context)
    input_part = got.input + got.cache_read + got.cache_write
    assert input_part == expected.input_price and got.output == expected.output_price
    # what is neither input nor output is per-request and server-tool fees (no other unit is in the counts)
    assert got.requests == expected.total_price - expected.input_price - expected.output_price


def test_models_are_many() -> None:
    assert len(ALL_MODELS) > 2000


@pytest.mark.parametrize("when", WHEN)
def test_every_model_with_full_usage(when: datetime) -> None:
    counts = {
        "input_tokens": 250_000,
        "cache_read_tokens": 30_000,
        "cache_write_tokens": 12_000,
        "output_tokens": 9_000,
        "output_reasoning_tokens": 4_000,
        "web_searches": 3,
    }
    for provider, model in ALL_MODELS:
        for context in CONTEXTS:
            check(provider, model, counts, when, context)


usage_counts = st.fixed_dictionaries(
    {"input_tokens": st.integers(0, 2_000_000), "output_tokens": st.integers(0, 200_000)},
    optional={
        "cache_read_tokens": st.integers(0, 1_000_000),
        "cache_write_tokens": st.integers(0, 500_000),
        "cache_write_1h_tokens": st.integers(0, 300_000),
        "cache_write_5m_tokens": st.integers(0, 300_000),
        "output_reasoning_tokens": st.integers(0, 100_000),
        "input_audio_tokens": st.integers(0, 50_000),
        "web_searches": st.integers(0, 20),
    },
)


@settings(max_examples=400, deadline=None)
@given(
    index=st.integers(0, len(ALL_MODELS) - 1),
    counts=usage_counts,
    when=st.datetimes(min_value=datetime(2023, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
    context=st.sampled_from(CONTEXTS),
)
def test_random_usage_matches_calc_price(index: int, counts: dict[str, int], when: datetime, context: Any) -> None:
    provider, model = ALL_MODELS[index]
    check(provider, model, counts, when, context)


def test_breakdown_adds_up_to_total() -> None:
    provider = next(p for p in genai_providers if p.id == "anthropic")
    model = provider.find_model("claude-sonnet-4-5")
    assert model is not None
    parts = compile_model_price(model.get_prices(WHEN[1])).parts(
        {
            "input_tokens": 1000,
            "cache_read_tokens": 200,
            "cache_write_tokens": 300,
            "output_tokens": 100,
            "web_searches": 2,
        }
    )
    # $10 per thousand web searches (genai-prices: anthropic web_searches_kcount 10)
    assert parts.requests == Decimal("0.02")
    assert parts.input + parts.output + parts.cache_read + parts.cache_write + parts.requests == parts.total
    assert parts.total == Decimal("0.004185") + Decimal("0.02")
