"""Memory over many instrumented calls: RSS at checkpoints, and what tracemalloc sees growing.

A mixed workload on the real openai and anthropic SDKs against an in-process transport: chat
calls for 200 tenants, a 100-chunk stream every 100th call, an Anthropic message every 7th, an unknown
model every 50th (from a pool of 20). Spans go through a BatchSpanProcessor to an exporter that
drops them; metrics to an in-memory reader collected every 10,000 calls, as a periodic
exporter would. Growth is measured from the first checkpoint (after warm-up) to the last.

    .venv/bin/python bench/memory.py [--calls 1000000] [--tracemalloc]

``--tracemalloc`` is slower (about 2x) and prints the top allocation sites that grew.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time
import tracemalloc

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import aimon_otel
import overhead  # bench/, the script's own directory: in-process clients and exporters


def rss_mib() -> float:
    """Resident set size now (not the peak), from /proc."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(overhead.DroppingExporter()))
    trace.set_tracer_provider(tracer_provider)
    reader = InMemoryMetricReader()
    aimon_otel.AimonInstrumentor().instrument(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    work = overhead.workloads()
    chat, stream, message = work["openai chat"], work["openai stream, 100 chunks"], work["anthropic message"]
    unknown = overhead.unknown_model_call()

    def one(i: int) -> None:
        with aimon_otel.attributes(tenant_id=f"tenant-{i % 200}", feature=("search", "chat", "summary")[i % 3]):
            if i % 50 == 0:
                unknown(f"in-house-model-{i % 20}")
            elif i % 100 == 0:
                stream()
            elif i % 7 == 0:
                message()
            else:
                chat()

    checkpoint = max(args.calls // 10, 1)
    warm_up = min(checkpoint, 20_000)
    for i in range(warm_up):
        one(i)
    reader.get_metrics_data()
    gc.collect()
    if args.tracemalloc:
        tracemalloc.start(10)
        before = tracemalloc.take_snapshot()
    first = rss_mib()
    started = time.perf_counter()
    print(f"after {warm_up:>9,} warm-up calls: RSS {first:7.1f} MiB")
    for i in range(1, args.calls + 1):
        one(i)
        if i % 10_000 == 0:
            reader.get_metrics_data()
        if i % checkpoint == 0:
            gc.collect()
            print(f"after {i:>9,} calls:         RSS {rss_mib():7.1f} MiB  ({time.perf_counter() - started:6.0f} s)")
    gc.collect()
    last = rss_mib()
    print(f"\nRSS growth over {args.calls:,} calls after warm-up: {last - first:+.1f} MiB")
    if args.tracemalloc:
        after = tracemalloc.take_snapshot()
        stats = after.compare_to(before, "traceback")
        total = sum(stat.size_diff for stat in stats)
        print(f"tracemalloc: {total / 2**10:+.1f} KiB net; top growth:")
        for stat in stats[:8]:
            frame = stat.traceback[-1]
            print(
                f"  {stat.size_diff / 2**10:+9.1f} KiB  {stat.count_diff:+7d} blocks  {frame.filename}:{frame.lineno}"
            )
    tracer_provider.shutdown()


if __name__ == "__main__":
    main()
