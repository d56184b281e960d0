"""``make demo``: an unmodified app under ``opentelemetry-instrument``, then what it spent.

Starts the fake provider (or, with AIMON_DEMO_USE_REAL_API=1 and OPENAI_API_KEY set, uses the
real API), runs ``examples/app.py`` with the console span exporter, and prints the spans
and a usage table read back from that output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aimon_otel.testing import FakeProvider
from aimon_otel.testing.console import read_console_spans

APP = Path(__file__).with_name("app.py")


@contextmanager
def provider_env() -> Iterator[dict[str, str]]:
    if os.environ.get("AIMON_DEMO_USE_REAL_API") == "1" and os.environ.get("OPENAI_API_KEY"):
        print("Using the real OpenAI API (AIMON_DEMO_USE_REAL_API=1).")
        yield {}
        return
    with FakeProvider() as fake:
        print(f"Fake OpenAI-compatible provider on {fake.openai_base_url} (no network, no key needed).")
        yield {
            "OPENAI_BASE_URL": fake.openai_base_url,
            "OPENAI_API_KEY": "sk-demo-not-a-real-key",
            "AIMON_DEMO_FAKE_PROVIDER": "1",
        }


def run_app(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **extra_env,
        "OTEL_SERVICE_NAME": "aimon-demo",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    command = [str(Path(sys.executable).with_name("opentelemetry-instrument")), sys.executable, str(APP)]
    print("$ opentelemetry-instrument python examples/app.py\n")
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def show_spans(spans: list[dict[str, Any]]) -> None:
    print(
        f"{'span':<40} {'provider':<9} {'response model':<26} {'in':>5} {'cached':>6} {'out':>5} "
        f"{'reason':>6} {'ms':>7}  status"
    )
    for span in spans:
        a = span["attributes"]
        if "gen_ai.operation.name" not in a:
            continue
        ms = _duration_ms(span)
        status = span["status"]["status_code"]
        status = a.get("error.type", "ERROR") if status == "ERROR" else "ok"
        print(
            f"{span['name']:<40} {a.get('gen_ai.provider.name', ''):<9} {a.get('gen_ai.response.model', '-'):<26} "
            f"{a.get('gen_ai.usage.input_tokens', '-'):>5} {a.get('gen_ai.usage.cache_read.input_tokens', '-'):>6} "
            f"{a.get('gen_ai.usage.output_tokens', '-'):>5} {a.get('gen_ai.usage.reasoning.output_tokens', '-'):>6} "
            f"{ms:>7.1f}  {status}"
        )


def _duration_ms(span: dict[str, Any]) -> float:
    from datetime import datetime

    start = datetime.fromisoformat(span["start_time"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(span["end_time"].replace("Z", "+00:00"))
    return (end - start).total_seconds() * 1000


def show_usage(spans: list[dict[str, Any]]) -> None:
    rows: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for span in spans:
        a = span["attributes"]
        if "gen_ai.operation.name" not in a:
            continue
        row = rows[(a["gen_ai.provider.name"], a.get("gen_ai.request.model", "?"))]
        row[0] += 1
        row[1] += span["status"]["status_code"] == "ERROR"
        row[2] += a.get("gen_ai.usage.input_tokens", 0)
        row[3] += a.get("gen_ai.usage.cache_read.input_tokens", 0)
        row[4] += a.get("gen_ai.usage.output_tokens", 0)
    print(
        f"\n{'provider':<9} {'model':<24} {'calls':>5} {'errors':>6} {'input tok':>9} {'cached':>7} {'output tok':>10}"
    )
    for (provider, model), (calls, errors, tokens_in, cached, tokens_out) in sorted(rows.items()):
        print(f"{provider:<9} {model:<24} {calls:>5} {errors:>6} {tokens_in:>9} {cached:>7} {tokens_out:>10}")


def main() -> int:
    with provider_env() as env:
        result = run_app(env)
    print("--- the app's own output ---")
    print(
        "\n".join(
            line
            for line in result.stdout.splitlines()
            if line.startswith(("chat:", "stream:", "responses:", "embedding", "async:", "rate limited:"))
        )
    )
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr)
        return result.returncode
    spans = read_console_spans(result.stdout)
    print(f"\n--- {len(spans)} spans exported by the console exporter ---")
    show_spans(spans)
    show_usage(spans)
    return 0 if spans else 1


if __name__ == "__main__":
    sys.exit(main())
