"""Instructions per call, counted by valgrind's callgrind: a steady figure on a noisy machine.

Wall-clock timings here move by tens of percent from run to run; instruction counts do not. Each
figure is a slope: the same workload run N and 3N times in fresh interpreters under callgrind,
(instructions(3N) - instructions(N)) / 2N, so start-up and imports cancel out. PYTHONHASHSEED=0.

    .venv/bin/python bench/instructions.py [--variant aimon] [--calls 40] [--workloads "openai chat"]

Prints bare and instrumented instructions per call and what the instrumentation adds. Needs
``valgrind`` (Debian's package). ``bench/peers.py --instructions`` runs it for aimon-otel and in each peer's virtualenv.
A run takes minutes: Python under callgrind is ~50x slower.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = """
import sys
sys.path.insert(0, {here!r})
import overhead
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
if {noop_sdk!r}:  # our own work alone: the OpenTelemetry SDK replaced by the API's no-op providers
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider
    tracer_provider, meter_provider = NoOpTracerProvider(), NoOpMeterProvider()
else:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(overhead.DroppingExporter()))
    trace.set_tracer_provider(tracer_provider)
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
toggle = overhead.Toggle({variant!r}, tracer_provider, meter_provider)
work = overhead.workloads(toggle, only={workload!r})[{workload!r}]
if {instrumented!r}:
    toggle.on()
for _ in range(20):
    work()
import gc  # start-up's objects (botocore's service models: millions) out of the collector's way, so a full
gc.collect()  # collection landing in one run and not the other does not swing the slope
gc.freeze()
for _ in range({calls}):
    work()
"""


def instructions(variant: str, workload: str, instrumented: bool, calls: int, noop_sdk: bool = False) -> int:
    return instructions_of_script(
        WORKER.format(
            here=str(HERE),
            variant=variant,
            workload=workload,
            instrumented=instrumented,
            calls=calls,
            noop_sdk=noop_sdk,
        )
    )


def instructions_of_script(source: str) -> int:
    """Instructions callgrind counts running ``source`` in a fresh interpreter (PYTHONHASHSEED=0)."""
    with tempfile.TemporaryDirectory() as directory:
        script = Path(directory) / "worker.py"
        script.write_text(source)
        out = Path(directory) / "callgrind.out"
        result = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                "--dump-instr=no",
                "--collect-jumps=no",
                sys.executable,
                str(script),
            ],
            env={**os.environ, "PYTHONHASHSEED": "0"},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(result.stderr[-3000:])
        found = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE) or re.search(
            r"Collected\s*:\s*(\d+)", result.stderr
        )
        if found is None:
            raise SystemExit("no instruction count in callgrind's output")
        return int(found.group(1))


def per_call(variant: str, workload: str, instrumented: bool, calls: int, noop_sdk: bool = False) -> float:
    low = instructions(variant, workload, instrumented, calls, noop_sdk)
    high = instructions(variant, workload, instrumented, 3 * calls, noop_sdk)
    return (high - low) / (2 * calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--variant", default="aimon")
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument(
        "--workloads", nargs="*", default=["openai chat", "openai stream, 100 chunks", "anthropic message"]
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--split", action="store_true", help="also run with no-op OpenTelemetry providers: ours vs the SDK's share"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    if not args.json:
        print(f"{args.variant}; callgrind instructions per call (slope of {args.calls} and {3 * args.calls} calls)")
        print(f"{'workload':<34} {'bare':>12} {'instrumented':>13} {'added':>11} {'ours':>11} {'OTel SDK':>11}")
    results = {}
    for workload in args.workloads:
        if workload.startswith("anthropic") and args.variant == "otel-openai-v2":
            continue
        bare = per_call(args.variant, workload, False, args.calls)
        instrumented = per_call(args.variant, workload, True, args.calls)
        row = results[workload] = {"bare": bare, "instrumented": instrumented, "added": instrumented - bare}
        if args.split:
            ours = per_call(args.variant, workload, True, args.calls, noop_sdk=True) - bare
            row.update(ours=ours, sdk=instrumented - bare - ours)
        if not args.json:  # each row as soon as it is measured: a run over every SDK takes an hour
            split = f" {row['ours']:>+11,.0f} {row['sdk']:>+11,.0f}" if "ours" in row else ""
            print(f"{workload:<34} {bare:>12,.0f} {instrumented:>13,.0f} {row['added']:>+11,.0f}{split}", flush=True)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
