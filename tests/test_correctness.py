"""Correctness on the call path: what matched, what is suppressed, and faults of ours that must not reach the app."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation

from aimon_otel import PricingEngine
from aimon_otel.pricing.catalog import MAX_COMPILED_PER_MODEL
from aimon_otel.testing import FakeProvider
from aimon_otel.testing import openai_wire as wire
from tests.conftest import MESSAGES, Telemetry


def test_pricing_model_is_absent_when_nothing_matched(telemetry: Telemetry, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="initech-finetune-v2", messages=MESSAGES)
    unknown = telemetry.span().attributes or {}
    assert unknown["aimon.pricing.status"] == "unknown_model"
    assert "aimon.pricing.model" not in unknown
    telemetry.exporter.clear()
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={wire.SCENARIO_HEADER: "error-429"}
        )
    failed = telemetry.span().attributes or {}
    assert failed["aimon.pricing.status"] == "no_usage" and "aimon.pricing.model" not in failed
    telemetry.exporter.clear()
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert (telemetry.span().attributes or {})["aimon.pricing.model"] == "gpt-4o-mini"  # the entry, not the snapshot


def test_suppress_instrumentation_is_honoured(telemetry: Telemetry, client: openai.OpenAI) -> None:
    with suppress_instrumentation():
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert completion.choices[0].message.content == wire.REPLY_TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert telemetry.spans() == []
    assert telemetry.points("gen_ai.client.operation.duration") == []
    assert telemetry.points("gen_ai.usage.cost") == []
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # and on again outside it
    assert len(telemetry.spans()) == 1


async def test_suppress_instrumentation_async(telemetry: Telemetry, async_client: openai.AsyncOpenAI) -> None:
    with suppress_instrumentation():
        await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert telemetry.spans() == []


def test_a_fault_deciding_what_to_hide_shows_the_item(
    telemetry: Telemetry, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aimon_otel.instrumentation.providers.openai import ChunkStreamReader

    def broken(self: Any, chunk: Any) -> bool:
        raise RuntimeError("bug in hides")

    monkeypatch.setattr(ChunkStreamReader, "hides", broken)
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == wire.REPLY_TEXT
    span = telemetry.span()
    assert span.attributes["aimon.stream.outcome"] == "completed"


@pytest.mark.parametrize("where", ["activate", "fallback", "first_chunk"])
def test_faults_around_the_call_never_reach_the_app(
    where: str, telemetry: Telemetry, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aimon_otel.instrumentation.invocation import Invocation
    from aimon_otel.instrumentation.pipeline import Call
    from aimon_otel.instrumentation.providers.openai import StreamUsagePlan

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"bug in {where}")

    if where == "activate":
        monkeypatch.setattr(Call, "activate", boom)
    elif where == "fallback":
        monkeypatch.setattr(StreamUsagePlan, "without_additions", boom)
    else:
        monkeypatch.setattr(Invocation, "first_chunk", boom)
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-x", max_retries=0)
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    with pytest.raises(openai.BadRequestError):  # the app's own error, not ours
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers={wire.SCENARIO_HEADER: "error-400"}
        )


def test_time_of_day_prices_keep_memory_flat() -> None:
    engine = PricingEngine()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for minute in range(3 * MAX_COMPILED_PER_MODEL):
        result = aimon_cost(engine, start + timedelta(minutes=minute))
        assert result.priced
    model = engine.catalog.model("deepseek", "deepseek-chat")
    assert model is not None and not model.daily  # the premise: DeepSeek prices by time of day
    assert len(model.compiled) <= MAX_COMPILED_PER_MODEL
    gc.collect()


def aimon_cost(engine: PricingEngine, at: datetime) -> Any:
    return engine.price_counts("deepseek", "deepseek-chat", {"input_tokens": 1000, "output_tokens": 10}, at=at)


def test_a_fault_recording_metrics_still_ends_the_span(
    telemetry: Telemetry, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aimon_otel.instrumentation import pipeline

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("metrics bug")

    monkeypatch.setattr(pipeline, "record_metrics", broken)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == wire.REPLY_TEXT
    span = telemetry.span()  # ended and exported, with what was known before the fault
    assert span.attributes["gen_ai.usage.cost"] == pytest.approx(0.000033, abs=1e-12)


def test_a_field_of_an_sdk_model_reads_as_getattr_does() -> None:
    """``field`` reads a pydantic model's fields, extras and properties from where pydantic keeps them (an absent
    one through pydantic's ``__getattr__`` costs an exception per read): each answer equals ``getattr``'s."""
    from collections.abc import Mapping

    import anthropic.types
    from openai.types import CompletionUsage

    from aimon_otel.instrumentation.content import field, fields

    usage = CompletionUsage.model_validate(
        {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "cost": 0.5, "prompt_tokens_details": None}
    )
    message = anthropic.types.Usage(input_tokens=3, output_tokens=4)
    for model, name in [
        (usage, "prompt_tokens"),  # a field
        (usage, "cost"),  # an extra the provider sent (OpenRouter)
        (usage, "prompt_tokens_details"),  # a field that is None
        (usage, "prompt_cache_hit_tokens"),  # absent
        (usage, "model_fields_set"),  # on the class
        (message, "iterations"),
        (message, "input_tokens"),
    ]:
        assert field(model, name) == getattr(model, name, None), name
        assert fields(model, (name, "absent", name)) == [getattr(model, name, None), None, field(model, name)]

    class Plain:
        def __init__(self) -> None:
            self.here = 1

    class Pairs(Mapping[str, int]):
        def __getitem__(self, key: str) -> int:
            return {"a": 1}[key]

        def __iter__(self) -> Any:
            return iter(["a"])

        def __len__(self) -> int:
            return 1

    assert (field(Plain(), "here"), field(Plain(), "gone")) == (1, None)
    assert (field({"a": 2}, "a"), field(Pairs(), "a"), field(None, "a")) == (2, 1, None)
    assert (fields({"a": 2}, ("a", "b")), fields(Pairs(), ("a",)), fields(None, ("a", "b"))) == (
        [2, None],
        [1],
        [None] * 2,
    )
    assert fields(Plain(), ("here", "gone")) == [1, None]


@pytest.mark.parametrize(
    ("provider", "model", "before", "after"),
    [
        # a start-date price: the new one from UTC midnight (genai-prices: gemini-3.6-flash from 2027-01-01)
        (
            "gcp.gemini",
            "gemini-3.6-flash",
            datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
        ),
        # a time-of-day price: DeepSeek's off-peak hours start on the minute
        (
            "deepseek",
            "deepseek-chat",
            datetime(2026, 12, 3, 16, 29, 59, tzinfo=UTC),
            datetime(2026, 12, 3, 16, 30, tzinfo=UTC),
        ),
    ],
)
def test_a_call_priced_now_gets_the_price_in_force_across_a_change(
    provider: str, model: str, before: datetime, after: datetime
) -> None:
    """Calls priced now keep their model's price between calls (no date maths per call); the kept price must
    still give way at the moment a dated or time-of-day price changes, to the one asked for with ``at``."""
    import time_machine

    from aimon_otel.instrumentation.usage import Usage

    engine = PricingEngine()
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    expected = [engine.price(provider, model, usage, at=moment).total for moment in (before, after)]
    assert expected[0] != expected[1]  # the premise: the price changes between the two moments
    got = []
    for moment in (before, after):
        with time_machine.travel(moment, tick=False):
            engine.price(provider, model, usage)  # kept from here
            got.append(engine.price(provider, model, usage).total)
    assert got == expected
    # A call's start in epoch seconds (what the instrumentation passes), the kept price reused and given way
    starts = [before.timestamp(), after.timestamp(), before.timestamp()]
    assert [engine.price(provider, model, usage, at=start).total for start in starts] == [*expected, expected[0]]


def test_a_kept_price_is_kept_per_service_tier() -> None:
    """The price kept for calls priced by their start is kept per service tier: a priority call right after a
    default one (and back) pays its own tier's price, as priced afresh with a datetime."""
    from aimon_otel.instrumentation.usage import Usage

    engine = PricingEngine()
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    start = datetime(2026, 12, 3, 12, tzinfo=UTC)
    tiers = [None, "default", "priority", "flex", None, "priority"]
    expected = [engine.price("openai", "gpt-4o-mini", usage, at=start, service_tier=tier).total for tier in tiers]
    assert len(set(expected)) == 2  # the premise: priority differs from the default price
    got = [engine.price("openai", "gpt-4o-mini", usage, at=start.timestamp(), service_tier=t).total for t in tiers]
    assert got == expected
