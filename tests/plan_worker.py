"""One running app process of the plan-change test: makes a call each time it reads a line.

    python -m tests.plan_worker OPENAI_BASE_URL REDIS_URL BUDGETS_FILE

For each line on stdin (a tenant id) it makes one chat call for that tenant and prints ``ok`` or
``refused <budget> <limit>``; it keeps running (no restart) until stdin closes.
"""

from __future__ import annotations

import sys

import openai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

import aimon_otel


def main() -> None:
    base_url, ledger, budgets = sys.argv[1], sys.argv[2], sys.argv[3]
    aimon_otel.AimonInstrumentor().instrument(
        tracer_provider=TracerProvider(), meter_provider=MeterProvider(), budgets=budgets, budget_ledger=ledger
    )
    client = openai.OpenAI(base_url=base_url, api_key="sk-worker", max_retries=0)
    print("ready", flush=True)
    for line in sys.stdin:
        with aimon_otel.attributes(tenant_id=line.strip()):
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            except aimon_otel.BudgetExceeded as refusal:
                print(f"refused {refusal.budget} {refusal.limit}", flush=True)
                continue
        print("ok", flush=True)
    aimon_otel.AimonInstrumentor().uninstrument()


if __name__ == "__main__":
    main()
