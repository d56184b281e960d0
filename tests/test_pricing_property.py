"""The compiled fast path prices exactly as genai-prices' own ``calc_price``, for every model it knows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from genai_prices import Usage as GenaiUsage
from genai_prices import calc_price
from genai_prices.data import providers as genai_providers
from hypothesis import given, settings
from hypothesis import strategies as st

from aimon_otel.instrumentation.providers.gemini import gemini_usage
from aimon_otel.pricing import PricingEngine
from aimon_otel.pricing.compiled import InvalidUsageError, compile_model_price
from aimon_otel.pricing.result import PricingStatus

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


ENGINE = PricingEngine()
GEMINI_MODELS = [m for p in genai_providers if p.id == "google" for m in p.models if m.id.startswith("gemini")]
MODALITIES = ("TEXT", "AUDIO", "IMAGE", "VIDEO", "DOCUMENT")
modality_counts = st.fixed_dictionaries({}, optional={m: st.integers(0, 300_000) for m in MODALITIES})


@st.composite
def gemini_usage_metadata(draw: st.DrawFn) -> dict[str, Any]:
    """A ``usage_metadata`` as google-genai parses it: counts and their breakdown by modality, the cache
    part of the prompt's per modality, tool-use prompt tokens, candidates (text, image or audio out)."""
    prompt = draw(modality_counts)
    cached = {m: draw(st.integers(0, n)) for m, n in prompt.items() if draw(st.booleans())}
    tool_use = draw(st.fixed_dictionaries({}, optional={m: st.integers(0, 20_000) for m in ("TEXT", "IMAGE")}))
    candidates = draw(
        st.fixed_dictionaries({}, optional={m: st.integers(0, 50_000) for m in ("TEXT", "IMAGE", "AUDIO")})
    )

    def details(counts: dict[str, int]) -> list[dict[str, Any]]:
        return [{"modality": m, "token_count": n} for m, n in counts.items()]

    return {
        "prompt_token_count": sum(prompt.values()),
        "prompt_tokens_details": details(prompt),
        "cached_content_token_count": sum(cached.values()) if cached else None,
        "cache_tokens_details": details(cached),
        "tool_use_prompt_token_count": sum(tool_use.values()) if tool_use else None,
        "tool_use_prompt_tokens_details": details(tool_use),
        "candidates_token_count": sum(candidates.values()),
        "candidates_tokens_details": details(candidates),
        "thoughts_token_count": draw(st.integers(0, 20_000)),
    }


def genai_prices_usage(meta: dict[str, Any]) -> GenaiUsage:
    """The same usage in genai-prices' fields, worked out here from the API's own fields."""

    def of(name: str, modality: str) -> int:
        return sum(d["token_count"] for d in meta[name] if d["modality"] == modality)

    def both(modality: str) -> int:
        return of("prompt_tokens_details", modality) + of("tool_use_prompt_tokens_details", modality)

    return GenaiUsage(
        input_tokens=meta["prompt_token_count"] + (meta["tool_use_prompt_token_count"] or 0),
        cache_read_tokens=meta["cached_content_token_count"] or 0,
        output_tokens=meta["candidates_token_count"] + meta["thoughts_token_count"],
        input_audio_tokens=both("AUDIO"),
        input_image_tokens=both("IMAGE"),
        input_video_tokens=both("VIDEO"),
        cache_audio_read_tokens=of("cache_tokens_details", "AUDIO"),
        cache_image_read_tokens=of("cache_tokens_details", "IMAGE"),
        cache_video_read_tokens=of("cache_tokens_details", "VIDEO"),
        output_audio_tokens=of("candidates_tokens_details", "AUDIO"),
        output_image_tokens=of("candidates_tokens_details", "IMAGE"),
    )


def test_gemini_models_are_many() -> None:
    assert len(GEMINI_MODELS) > 20


@settings(max_examples=600, deadline=None)
@given(
    index=st.integers(0, len(GEMINI_MODELS) - 1),
    meta=gemini_usage_metadata(),
    when=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
    vertex=st.booleans(),
)
def test_gemini_usage_by_modality_is_priced_as_calc_price(
    index: int, meta: dict[str, Any], when: datetime, vertex: bool
) -> None:
    """Gemini's usage metadata, read by our adapter and priced by our engine, against genai-prices'
    ``calc_price`` on the same usage by modality, for every Gemini model (Gemini API and Vertex)."""
    model = GEMINI_MODELS[index]
    usage = gemini_usage(meta)
    ours = ENGINE.price("gcp.vertex_ai" if vertex else "gcp.gemini", model.id, usage, at=when)
    try:
        expected = calc_price(genai_prices_usage(meta), model.id, provider_id="google", genai_request_timestamp=when)
    except (ValueError, LookupError):
        assert ours.status is not PricingStatus.PRICED, (model.id, meta)
        return
    assert ours.status is PricingStatus.PRICED, (model.id, ours)
    assert ours.total == expected.total_price, (model.id, meta, when)
