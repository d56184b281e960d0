"""Start-up cost: ``import aimon_otel`` and ``instrument()``, each in a fresh interpreter.

The app's own imports (openai, anthropic, the OpenTelemetry SDK) happen first and are not
counted: they are paid with or without us. Prices load in a background thread and are not on
this path either (the first priced call waits for them if it comes first).

    .venv/bin/python bench/startup.py [--runs 7]

Three cases: the app imported openai and anthropic; it imported every SDK aimon-otel wraps (boto3
and aiobotocore, google-genai, groq, mistralai, ollama, cohere, litellm: each is wrapped at
``instrument()``); it imported none (nothing of an SDK is imported by us: the import hooks wait).
    .venv/bin/python -X importtime -c "import openai, anthropic, opentelemetry.sdk.trace; import aimon_otel"
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

SDK_IMPORTS = {
    "openai, anthropic": "import openai, anthropic",
    "every SDK": "import openai, anthropic, boto3, aiobotocore.session, google.genai\n"
    "import groq, mistralai, ollama, cohere, litellm",
    "no SDK": "",
}
PROBE = """
import json, sys, time
{sdk_imports}
before = set(sys.modules)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.metrics import MeterProvider
tracer_provider, meter_provider = TracerProvider(), MeterProvider()
started = time.perf_counter()
import aimon_otel
imported = time.perf_counter()
aimon_otel.AimonInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
done = time.perf_counter()
sdks = ("openai", "anthropic", "boto3", "botocore", "google.genai", "groq", "mistralai", "ollama", "cohere", "litellm")
ours = sorted(name for name in set(sys.modules) - before if name.split(".")[0] in sdks or name == "google.genai")
print(json.dumps({{"import_ms": (imported - started) * 1e3, "instrument_ms": (done - imported) * 1e3, "sdks": ours}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # LiteLLM's import fetches prices otherwise
    print(f"median of {args.runs} fresh interpreters; the app's own imports (and the OTel SDK's) not counted")
    print(f"{'the app imported':<20} {'import aimon_otel':>18} {'instrument()':>13} {'total':>9}")
    for case, imports in SDK_IMPORTS.items():
        probe = PROBE.replace("{sdk_imports}", imports).replace("{{", "{").replace("}}", "}")
        runs = []
        for _ in range(args.runs):
            try:
                done = subprocess.run(
                    [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False, timeout=120
                )
            except subprocess.TimeoutExpired:
                print(f"{case:<20} not measured: the probe did not exit in 120 s")
                break
            if done.returncode != 0:
                print(f"{case:<20} not measured: {done.stderr.strip().splitlines()[-1]}")
                break
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        else:
            imported = statistics.median(r["import_ms"] for r in runs)
            instrumented = statistics.median(r["instrument_ms"] for r in runs)
            print(f"{case:<20} {imported:>15.1f} ms {instrumented:>10.1f} ms {imported + instrumented:>6.1f} ms")
            if runs[0]["sdks"]:  # aimon-otel must not import an SDK the app did not
                print(f"  SDK modules imported by aimon-otel: {', '.join(runs[0]['sdks'])}")


if __name__ == "__main__":
    main()
