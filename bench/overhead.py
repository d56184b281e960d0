"""Per-call overhead of aimon-otel on the real openai SDK, against an in-process transport.

No network: the SDK's HTTP client gets a MockTransport answering with the fake provider's
wire format, so the time measured is SDK + instrumentation only. Bare and instrumented runs
are interleaved in rounds within one process, and the median per-call time is compared as a
ratio (machines are noisy; ratios measured in one run are what we trust).

    .venv/bin/python bench/overhead.py [--calls 400] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from aimon_otel import AimonInstrumentor
from aimon_otel.testing.openai_wire import CHUNKS_HEADER, OpenAIWire

try:  # openai 3.x uses the httpx2 fork; older releases use httpx
    import httpx2 as httpx_module
except ImportError:  # pragma: no cover - depends on the installed SDK
    import httpx as httpx_module  # type: ignore[no-redef]


class DroppingExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def in_process_client() -> openai.OpenAI:
    wire = OpenAIWire()

    def handle(request: Any) -> Any:
        headers = {k.lower(): v for k, v in request.headers.items()}
        answer = wire.handle(request.url.path, headers, json.loads(request.content or b"{}"))
        assert answer is not None
        if answer.events is not None:
            return httpx_module.Response(
                answer.status, headers={"content-type": answer.content_type}, content=_Bytes(answer.events)
            )
        return httpx_module.Response(answer.status, headers={"content-type": answer.content_type}, content=answer.body)

    http_client = httpx_module.Client(transport=httpx_module.MockTransport(handle))
    return openai.OpenAI(base_url="http://bench.local/v1", api_key="sk-bench", http_client=http_client, max_retries=0)


class _Bytes:
    """A sync byte stream for an httpx Response body."""

    def __init__(self, frames: Iterator[bytes]) -> None:
        self.frames = frames

    def __iter__(self) -> Iterator[bytes]:
        return self.frames


MESSAGES = [{"role": "user", "content": "hi"}]


def workloads(client: openai.OpenAI) -> dict[str, Callable[[], Any]]:
    return {
        "chat (non-stream)": lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
        "chat stream, 100 chunks": lambda: sum(
            1
            for _ in client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers={CHUNKS_HEADER: "100"}
            )
        ),
    }


def per_call_us(work: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        work()
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DroppingExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    client = in_process_client()
    print(f"openai {openai.__version__}; {args.rounds} interleaved rounds of {args.calls} calls; median us/call\n")
    print(f"{'workload':<26} {'bare':>9} {'aimon':>9} {'overhead':>9}")
    for name, work in workloads(client).items():
        for _ in range(20):  # warm up imports and connection pools
            work()
        bare, instrumented = [], []
        for _ in range(args.rounds):
            bare.append(per_call_us(work, args.calls))
            instrumentor = AimonInstrumentor()
            instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
            instrumented.append(per_call_us(work, args.calls))
            instrumentor.uninstrument()
        b, i = statistics.median(bare), statistics.median(instrumented)
        print(f"{name:<26} {b:>9.1f} {i:>9.1f} {(i / b - 1) * 100:>8.1f}%")
    tracer_provider.shutdown()


if __name__ == "__main__":
    main()
