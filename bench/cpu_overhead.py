"""CPU time each workload's call costs bare and instrumented, alternating in one process: a quick A/B.

    .venv/bin/python bench/cpu_overhead.py [--calls 400] [--rounds 5] [workload ...]

``time.process_time`` counts this process's CPU only, so other load on the machine moves it far less
than wall-clock; the minimum over rounds is taken (noise only ever adds). Bare and instrumented rounds
alternate, so a drift in the machine hits both. Prints µs per call and what the instrumentation adds,
and each SDK's added time against the OpenAI chat call's.
"""

from __future__ import annotations

import argparse
import time

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import overhead

DEFAULT = [
    "openai chat",
    "s3 list_buckets (not an LLM call)",
    "bedrock converse",
    "groq chat",
    "mistral chat",
    "ollama chat",
    "cohere chat",
    "litellm completion (openai)",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("workloads", nargs="*", default=DEFAULT)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(overhead.DroppingExporter()))
    trace.set_tracer_provider(tracer_provider)
    toggle = overhead.Toggle("aimon", tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()]))
    print(
        f"CPU µs per call, the least of {args.rounds} rounds of {args.calls} calls, bare and instrumented alternating"
    )
    added: dict[str, float] = {}
    for name in args.workloads:
        work = overhead.workloads(toggle, only=name)[name]
        best = {"off": float("inf"), "on": float("inf")}
        for _ in range(args.rounds):
            for mode in ("off", "on"):
                getattr(toggle, mode)()
                for _ in range(30):  # warm-up: clients made, prices compiled, connections open
                    work()
                started = time.process_time()
                for _ in range(args.calls):
                    work()
                best[mode] = min(best[mode], (time.process_time() - started) / args.calls * 1e6)
        toggle.off()
        added[name] = best["on"] - best["off"]
        ratio = f"  {added[name] / added['openai chat']:.2f}x OpenAI chat's" if "openai chat" in added else ""
        print(f"{name:<36} bare {best['off']:8.1f}  instrumented {best['on']:8.1f}  added {added[name]:+7.1f}{ratio}")


if __name__ == "__main__":
    main()
