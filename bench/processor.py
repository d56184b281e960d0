"""What ``CostEnrichmentSpanProcessor`` adds to spans it is not there for, and to the ones it is.

    .venv/bin/python bench/processor.py [--spans 20000] [--rounds 7]

The app's other spans (an HTTP handler's, a database call's: no GenAI attribute) and aimon-otel's own
spans (already priced when they end) pass through the processor on every start and end; this
measures a span's start + end through ``BatchSpanProcessor`` alone and through the processor wrapping
it, in alternating rounds of one process, and prints the difference per span (median of rounds).
A foreign GenAI span with token usage and no price (what the processor prices) is shown for scale.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from aimon_otel import CostEnrichmentSpanProcessor, PricingEngine, semconv


class Dropping(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


KINDS: dict[str, dict[str, object]] = {
    "a span that is not a GenAI span": {"http.request.method": "GET", "url.path": "/orders"},
    "aimon-otel's own span (priced already)": {
        semconv.OPERATION_NAME: "chat",
        semconv.PROVIDER_NAME: "openai",
        semconv.REQUEST_MODEL: "gpt-4o-mini",
        semconv.USAGE_INPUT_TOKENS: 120,
        semconv.USAGE_OUTPUT_TOKENS: 30,
        semconv.PRICING_STATUS: "priced",
        semconv.USAGE_COST: 0.000036,
    },
    "another instrumentation's GenAI span (priced here)": {
        semconv.OPERATION_NAME: "chat",
        semconv.PROVIDER_NAME: "openai",
        semconv.REQUEST_MODEL: "gpt-4o-mini",
        semconv.USAGE_INPUT_TOKENS: 120,
        semconv.USAGE_OUTPUT_TOKENS: 30,
    },
}


def tracer_with(processor: SpanProcessor) -> Callable[[dict[str, object]], None]:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    others, ours = provider.get_tracer("bench"), provider.get_tracer(semconv.INSTRUMENTATION_SCOPE)

    def span(attributes: dict[str, object]) -> None:
        tracer = ours if semconv.PRICING_STATUS in attributes else others  # our spans come from our scope
        tracer.start_span("work", attributes=attributes).end()  # type: ignore[arg-type]

    return span


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    engine = PricingEngine()
    bare = tracer_with(BatchSpanProcessor(Dropping(), max_queue_size=1_000_000))
    wrapped = tracer_with(
        CostEnrichmentSpanProcessor(BatchSpanProcessor(Dropping(), max_queue_size=1_000_000), engine, lambda _: {})
    )
    print(f"per span, start + end (median of {args.rounds} alternating rounds of {args.spans:,} spans):")
    for kind, attributes in KINDS.items():
        times: dict[str, list[float]] = {"bare": [], "wrapped": []}
        for _ in range(args.rounds):
            for name, span in (("bare", bare), ("wrapped", wrapped)):
                start = time.perf_counter()
                for _ in range(args.spans):
                    span(attributes)
                times[name].append((time.perf_counter() - start) / args.spans * 1e6)
        plain, through = statistics.median(times["bare"]), statistics.median(times["wrapped"])
        target = "" if "priced here" in kind else " (target <= +2 us)"
        print(f"  {kind}: {plain:.2f} us, through the processor {through:.2f} us: {through - plain:+.2f} us{target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
