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
        print("Using the real OpenAI and Anthropic APIs (AIMON_DEMO_USE_REAL_API=1; both keys needed).")
        yield {}
        return
    with FakeProvider() as fake:
        print(f"Fake OpenAI, Anthropic, Gemini and Bedrock APIs on {fake.base_url} (no network, no key needed).")
        yield {
            "OPENAI_BASE_URL": fake.openai_base_url,
            "OPENAI_API_KEY": "sk-demo-not-a-real-key",
            "ANTHROPIC_BASE_URL": fake.anthropic_base_url,
            "ANTHROPIC_API_KEY": "sk-ant-demo-not-a-real-key",
            "GOOGLE_GEMINI_BASE_URL": fake.gemini_base_url,
            "GOOGLE_API_KEY": "AIza-demo-not-a-real-key",
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": fake.base_url,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "AKIADEMONOTAREALKEY",
            "AWS_SECRET_ACCESS_KEY": "demo-not-a-real-secret",
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
        "AIMON_BUDGETS": str(Path(__file__).with_name("demo-budgets.yaml")),
    }
    command = [str(Path(sys.executable).with_name("opentelemetry-instrument")), sys.executable, str(APP)]
    print("$ opentelemetry-instrument python examples/app.py\n")
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def genai_spans(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in spans if "gen_ai.operation.name" in s["attributes"]]


def show_spans(spans: list[dict[str, Any]]) -> None:
    print(
        f"{'span':<36} {'tenant':<8} {'response model':<24} {'in':>4} {'cached':>6} {'c.write':>7} {'out':>4} "
        f"{'cost USD':>13} {'ms':>6}  status"
    )
    for span in spans:
        a = span["attributes"]
        status = a.get("error.type", "ERROR") if span["status"]["status_code"] == "ERROR" else "ok"
        cost = a.get("gen_ai.usage.cost")
        cost_text = f"{cost:.8f}" if cost is not None else a.get("aimon.pricing.status", "-")
        print(
            f"{span['name']:<36} {a.get('tenant.id', '-'):<8} {a.get('gen_ai.response.model', '-'):<24} "
            f"{a.get('gen_ai.usage.input_tokens', '-'):>4} {a.get('gen_ai.usage.cache_read.input_tokens', '-'):>6} "
            f"{a.get('gen_ai.usage.cache_creation.input_tokens', '-'):>7} "
            f"{a.get('gen_ai.usage.output_tokens', '-'):>4} {cost_text:>13} {_duration_ms(span):>6.1f}  {status}"
        )


def _duration_ms(span: dict[str, Any]) -> float:
    from datetime import datetime

    start = datetime.fromisoformat(span["start_time"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(span["end_time"].replace("Z", "+00:00"))
    return (end - start).total_seconds() * 1000


LABELS = {
    "gen_ai.provider.name": "provider",
    "gen_ai.request.model": "model",
    "tenant.id": "tenant",
    "aimon.feature": "feature",
    "gen_ai.agent.name": "agent",
}


def spend_by(spans: list[dict[str, Any]], *keys: str) -> dict[tuple[str, ...], list[float]]:
    """calls, errors, unpriced, input tokens, output tokens, cost, by the given attributes."""
    rows: dict[tuple[str, ...], list[float]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0.0])
    for span in spans:
        a = span["attributes"]
        row = rows[tuple(str(a.get(key, "(none set)")) for key in keys)]
        row[0] += 1
        row[1] += span["status"]["status_code"] == "ERROR"
        row[2] += a.get("aimon.pricing.status") in ("unknown_model", "invalid_usage")
        row[3] += a.get("gen_ai.usage.input_tokens", 0)
        row[4] += a.get("gen_ai.usage.output_tokens", 0)
        row[5] += a.get("gen_ai.usage.cost", 0.0)
    return rows


def show_spend(spans: list[dict[str, Any]], title: str, *keys: str) -> None:
    print(f"\nSpend by {title}")
    header = " ".join(f"{LABELS.get(k, k):<22}" for k in keys)
    print(f"{header} {'calls':>5} {'errors':>6} {'unpriced':>8} {'in tok':>7} {'out tok':>7} {'cost USD':>11}")
    rows = spend_by(spans, *keys)
    for key, (calls, errors, unpriced, tokens_in, tokens_out, cost) in sorted(rows.items(), key=lambda r: -r[1][5]):
        label = " ".join(f"{k:<22}" for k in key)
        cost_text = "unpriced" if unpriced and unpriced == calls else f"{cost:.8f}"
        print(f"{label} {calls:>5} {errors:>6} {unpriced:>8} {tokens_in:>7} {tokens_out:>7} {cost_text:>11}")
    total = sum(row[5] for row in rows.values())
    print(f"{'total':<{23 * len(keys) - 1}} {'':>5} {'':>6} {'':>8} {'':>7} {'':>7} {total:>11.8f}")


def main() -> int:
    with provider_env() as env:
        result = run_app(env)
    print("--- the app's own output ---")
    print(
        "\n".join(
            line
            for line in result.stdout.splitlines()
            if line.startswith(
                (
                    "chat:",
                    "stream:",
                    "responses:",
                    "embedding",
                    "async:",
                    "rate limited:",
                    "anthropic",
                    "budget",
                    "credits",
                )
            )
        )
    )
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr)
        return result.returncode
    spans = read_console_spans(result.stdout)
    spans = genai_spans(spans)
    print(f"\n--- {len(spans)} GenAI spans exported by the console exporter ---")
    show_spans(spans)
    show_spend(spans, "provider and model", "gen_ai.provider.name", "gen_ai.request.model")
    show_spend(spans, "tenant", "tenant.id")
    show_spend(spans, "tenant and feature", "tenant.id", "aimon.feature")
    show_spend(spans, "agent", "gen_ai.agent.name")
    print(
        "\nPrices: genai-prices' bundled table (offline). An unknown model is 'unpriced', never $0;"
        "\na failed call the provider refused (429 above) used no tokens and costs nothing."
        "\n'(none set)': the app gave no tenant, feature or agent for that call (aimon_otel.attributes(...))."
        "\nBudgets (examples/demo-budgets.yaml, AIMON_BUDGETS): globex passed half of its daily budget (a warning"
        "\nevent); the trial tenant's block budget refused its fifth call before it was sent (the span says"
        "\naimon.budget_exceeded and costs nothing), then it was moved to the pro plan while the app ran and its"
        "\nnext call went through; the prepaid tenant's $0.0001 credit pack ran out: HTTP 402 with the balance."
    )
    return 0 if spans else 1


if __name__ == "__main__":
    sys.exit(main())
