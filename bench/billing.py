"""The billing sink: what it adds to a call (an enqueue), and how fast the sender empties the queue.

    .venv/bin/python bench/billing.py [--events 50000]

1. The sink's time per call: ``sink(invocation, cost, attribution)`` as the pipeline calls it, timed
   over many calls (the sender thread runs beside it, as in an app), against an empty loop.
2. Throughput: that many events through the spool (SQLite, fsync per batch) to a loopback Lago
   (100 a batch), CloudEvents intake (500) and Stripe (one request per event: its v1 API has no batch).
   The loopback server runs in a process of its own, as a billing system would, so its Python does not
   share our interpreter's lock.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

from aimon_otel.billing.cloudevents import CloudEventsDestination
from aimon_otel.billing.delivery import Destination
from aimon_otel.billing.lago import LagoDestination
from aimon_otel.billing.sender import BillingSink
from aimon_otel.billing.spool import Spool
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.usage import Usage
from aimon_otel.pricing import CostResult, PricingStatus
from aimon_otel.testing.billing_servers import LAGO_KEY, STRIPE_KEY, BillingServer


def a_call() -> tuple[Invocation, CostResult, dict[str, str]]:
    invocation = Invocation(operation="chat", provider="openai", request_model="gpt-4o-mini")
    invocation.usage = Usage(input_tokens=1200, output_tokens=300)
    return invocation, CostResult(PricingStatus.PRICED, total=Decimal("0.00036")), {"tenant.id": "acme"}


def destination(server: BillingServer) -> Destination:
    if server.kind == "lago":
        return LagoDestination(server.url, LAGO_KEY, "llm_usage")
    if server.kind == "stripe":
        from aimon_otel.billing.stripe_meter import StripeMeterDestination

        return StripeMeterDestination(server.url, STRIPE_KEY, "llm_usage")
    return CloudEventsDestination(server.events_url, None, "llm.usage", "bench")


def sink_for(server: BillingServer, directory: str) -> BillingSink:
    spool = Spool(Path(directory) / f"{server.kind}.db", max_events=10_000_000)
    return BillingSink(destination(server), spool, lambda t: t, "usd", Decimal(1), flush_interval=0.05)


def enqueue_time(calls: int) -> tuple[float, float]:
    """Median ns per sink call and per empty loop, over 7 rounds."""
    invocation, cost, attribution = a_call()
    with BillingServer("lago") as server, tempfile.TemporaryDirectory() as directory:
        server.mode = "down"  # the sender spools and waits: only the call's side is measured
        sink = sink_for(server, directory)
        sink_rounds, empty_rounds = [], []
        for _ in range(7):
            started = time.perf_counter_ns()
            for _ in range(calls):
                sink(invocation, cost, attribution)
            sink_rounds.append((time.perf_counter_ns() - started) / calls)
            started = time.perf_counter_ns()
            for _ in range(calls):
                pass
            empty_rounds.append((time.perf_counter_ns() - started) / calls)
        sink.close(timeout=1)
    return statistics.median(sink_rounds), statistics.median(empty_rounds)


def _serve(kind: str, ready: Any) -> None:
    server = BillingServer(kind).start()
    ready.put(server.url)
    while True:
        time.sleep(3600)


def _stored(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_stored", timeout=10) as answer:
        return int(json.loads(answer.read())["stored"])


def throughput(kind: str, events: int) -> float:
    invocation, cost, attribution = a_call()
    ready: Any = multiprocessing.Queue()
    process = multiprocessing.Process(target=_serve, args=(kind, ready), daemon=True)
    process.start()
    url = ready.get(timeout=60)
    try:
        with tempfile.TemporaryDirectory() as directory:
            events_url = f"{url}/api/v1/events" if kind == "cloudevents" else url
            sink = BillingSink(
                _destination(kind, url, events_url),
                Spool(Path(directory) / f"{kind}.db", max_events=10_000_000),
                lambda t: t,
                "usd",
                Decimal(1),
                flush_interval=0.05,
            )
            started = time.perf_counter()
            for _ in range(events):
                sink(invocation, cost, attribution)
            while _stored(url) < events:
                time.sleep(0.02)
            elapsed = time.perf_counter() - started
            sink.close()
    finally:
        process.terminate()
    return events / elapsed


def _destination(kind: str, url: str, events_url: str) -> Destination:
    if kind == "lago":
        return LagoDestination(url, LAGO_KEY, "llm_usage")
    if kind == "stripe":
        from aimon_otel.billing.stripe_meter import StripeMeterDestination

        return StripeMeterDestination(url, STRIPE_KEY, "llm_usage")
    return CloudEventsDestination(events_url, None, "llm.usage", "bench")


class _AnswersAtOnce:
    """A destination that builds and serialises Lago's batch and answers at once: the sender's own work."""

    name = "none"
    max_batch = 100

    def __init__(self) -> None:
        self.lago = LagoDestination("http://unused", LAGO_KEY, "llm_usage")
        self.received = 0

    def send(self, events: Any) -> Any:
        from aimon_otel.billing.delivery import Delivery

        json.dumps({"events": [self.lago.payload(event) for event in events]})
        self.received += len(events)
        return Delivery(sent=[event.id for event in events])


def own_throughput(events: int) -> float:
    invocation, cost, attribution = a_call()
    destination = _AnswersAtOnce()
    with tempfile.TemporaryDirectory() as directory:
        spool = Spool(Path(directory) / "own.db", max_events=10_000_000)
        sink = BillingSink(destination, spool, lambda t: t, "usd", Decimal(1), flush_interval=0.05)
        started = time.perf_counter()
        for _ in range(events):
            sink(invocation, cost, attribution)
        while destination.received < events:
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        sink.close()
    return events / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    sink_ns, empty_ns = enqueue_time(100_000)
    print(f"billing sink, per call: {(sink_ns - empty_ns) / 1000:.2f} µs (an enqueue; median of 7 x 100,000)")
    print(f"sender, no HTTP (spool, events, Lago's JSON) {own_throughput(args.events):>9,.0f} events/s")
    for kind, count in (("lago", args.events), ("cloudevents", args.events), ("stripe", args.events // 10)):
        print(f"sender to a loopback {kind:<12} {throughput(kind, count):>9,.0f} events/s ({count:,} events)")


if __name__ == "__main__":
    main()
