"""Counters summed in-process and read by observable counters give the totals a synchronous counter would."""

from __future__ import annotations

import threading

import openai
from opentelemetry.sdk.metrics import Counter, MeterProvider, ObservableCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from aimon_otel import AimonInstrumentor
from aimon_otel.testing.openai_wire import CACHED_TOKENS, REASONING_TOKENS
from tests.conftest import MESSAGES, make_telemetry


def sums(reader: InMemoryMetricReader, name: str) -> dict[str, float]:
    data = reader.get_metrics_data()
    found: dict[str, float] = {}
    for resource_metrics in data.resource_metrics if data else []:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        kind = str(point.attributes.get("aimon.token.type", point.attributes.get("tenant.id", "")))
                        found[kind] = found.get(kind, 0) + point.value
    return found


def test_usage_tokens_are_exact_over_threads_and_reinstrumenting(client: openai.OpenAI) -> None:
    """The SDK keeps the first observable counter of a name per meter: a second instrument() on the
    same meter provider must add to the same sums, not to a tally nobody reads."""
    made = make_telemetry()

    def calls(count: int) -> None:
        for _ in range(count):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    threads = [threading.Thread(target=calls, args=(5,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sums(made.reader, "aimon.usage.tokens") == {
        "cache_read": 40 * CACHED_TOKENS,
        "reasoning": 40 * REASONING_TOKENS,
    }
    made.instrumentor.uninstrument()
    made.instrumentor.instrument(tracer_provider=made.tracer_provider, meter_provider=made.meter_provider)
    try:
        calls(2)
    finally:
        made.instrumentor.uninstrument()
    assert sums(made.reader, "aimon.usage.tokens") == {
        "cache_read": 42 * CACHED_TOKENS,
        "reasoning": 42 * REASONING_TOKENS,
    }
    savings = sums(made.reader, "aimon.cost.cache_savings")
    assert list(savings) == [""] and savings[""] > 0


def test_two_meter_providers_keep_their_own_sums(client: openai.OpenAI) -> None:
    first = make_telemetry()
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    first.instrumentor.uninstrument()
    second = make_telemetry()
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        second.instrumentor.uninstrument()
    assert sums(first.reader, "aimon.usage.tokens")["cache_read"] == CACHED_TOKENS
    assert sums(second.reader, "aimon.usage.tokens")["cache_read"] == 2 * CACHED_TOKENS


def test_delta_temporality_reports_what_each_interval_added(client: openai.OpenAI) -> None:
    reader = InMemoryMetricReader(
        preferred_temporality={Counter: AggregationTemporality.DELTA, ObservableCounter: AggregationTemporality.DELTA}
    )
    instrumentor = AimonInstrumentor()
    instrumentor.instrument(tracer_provider=TracerProvider(), meter_provider=MeterProvider(metric_readers=[reader]))
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert sums(reader, "aimon.usage.tokens")["cache_read"] == CACHED_TOKENS
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert sums(reader, "aimon.usage.tokens")["cache_read"] == 2 * CACHED_TOKENS
    finally:
        instrumentor.uninstrument()


def test_a_tally_sums_equal_sets_as_one_series_and_keeps_no_set_past_a_collection() -> None:
    """Adds are found by the attribute dict's identity (no frozenset per call); a collection folds them by
    content: equal sets made as two dicts are one series, totals stay cumulative, and no dict is kept."""
    import gc
    import weakref

    from opentelemetry.metrics import CallbackOptions

    from aimon_otel.instrumentation.tallies import Tally

    class Attributes(dict[str, str]):  # a dict that can be weakly referenced
        pass

    tally = Tally()
    first, second = Attributes({"k": "v"}), {"k": "v"}
    tally.add(1, first)
    tally.add(2, second)
    tally.add(3, first)
    assert [(o.value, o.attributes) for o in tally.observe(CallbackOptions())] == [(6, {"k": "v"})]
    gone = weakref.ref(first)
    del first
    gc.collect()
    assert gone() is None
    tally.add(4, second)
    tally.add(0.5, {"k": "w"})
    observed = {o.attributes["k"]: o.value for o in tally.observe(CallbackOptions())}
    assert observed == {"v": 10, "w": 0.5}
