"""Time to price one call: aimon-otel's compiled fast path versus genai-prices' own calc_price.

.venv/bin/python bench/pricing.py
"""

from __future__ import annotations

import time
import timeit

from genai_prices import Usage as GenaiUsage
from genai_prices import calc_price

from aimon_otel.instrumentation.usage import Usage
from aimon_otel.pricing import PricingEngine


def main() -> None:
    started = time.perf_counter()
    engine = PricingEngine()
    engine.catalog.model("openai", "gpt-4o-mini")
    print(f"price data load (first lookup): {(time.perf_counter() - started) * 1000:.0f} ms")
    cases = [
        (
            "openai",
            "gpt-4o-mini",
            Usage(input_tokens=120, output_tokens=30, cache_read_input_tokens=40, reasoning_output_tokens=10),
        ),
        (
            "anthropic",
            "claude-sonnet-4-5",
            Usage(
                input_tokens=250_000,
                output_tokens=900,
                cache_read_input_tokens=50_000,
                cache_creation_input_tokens=3_000,
            ),
        ),
    ]
    print(f"{'model':<22} {'aimon us':>9} {'genai-prices us':>16} {'same total':>11}")
    for provider, model, usage in cases:
        print_case(engine, provider, model, usage)


def print_case(engine: PricingEngine, provider: str, model: str, usage: Usage) -> None:
    """Time ours and genai-prices' calc_price on the same usage, and check the totals agree."""
    engine.price(provider, model, usage)
    n = 20_000
    ours = timeit.timeit(lambda: engine.price(provider, model, usage), number=n) / n * 1e6
    genai_usage = GenaiUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
    )
    m = n // 20
    theirs = timeit.timeit(lambda: calc_price(genai_usage, model, provider_id=provider), number=m) / m * 1e6
    reference = calc_price(genai_usage, model, provider_id=provider).total_price
    same = engine.price(provider, model, usage).total == reference
    print(f"{model:<22} {ours:>9.2f} {theirs:>16.1f} {same!s:>11}")


if __name__ == "__main__":
    main()
