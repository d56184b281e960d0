"""Start-up cost: ``import aimon_otel`` and ``instrument()``, each in a fresh interpreter.

The app's own imports (openai, anthropic, the OpenTelemetry SDK) happen first and are not
counted: they are paid with or without us. Prices load in a background thread and are not on
this path either (the first priced call waits for them if it comes first).

    .venv/bin/python bench/startup.py [--runs 7]
    .venv/bin/python -X importtime -c "import openai, anthropic, opentelemetry.sdk.trace; import aimon_otel"
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = """
import json, time
import openai, anthropic
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.metrics import MeterProvider
tracer_provider, meter_provider = TracerProvider(), MeterProvider()
started = time.perf_counter()
import aimon_otel
imported = time.perf_counter()
aimon_otel.AimonInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
done = time.perf_counter()
print(json.dumps({"import_ms": (imported - started) * 1e3, "instrument_ms": (done - imported) * 1e3}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    imported = statistics.median(r["import_ms"] for r in runs)
    instrumented = statistics.median(r["instrument_ms"] for r in runs)
    print(f"median of {args.runs} fresh interpreters (openai, anthropic and the OTel SDK already imported):")
    print(f"  import aimon_otel   {imported:6.1f} ms")
    print(f"  instrument()        {instrumented:6.1f} ms")
    print(f"  total               {imported + instrumented:6.1f} ms")


if __name__ == "__main__":
    main()
