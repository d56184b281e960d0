"""One app process of the shared-ledger test: N threads call until a block budget refuses them.

    python -m tests.budget_worker OPENAI_BASE_URL REDIS_URL BUDGETS_FILE THREADS

Prints one JSON line: calls completed, threads refused, and errors other than a refusal.
"""

from __future__ import annotations

import json
import sys
import threading

import openai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

import aimon_otel

MAX_CALLS_PER_THREAD = 500


def main() -> None:
    base_url, ledger, budgets, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    aimon_otel.AimonInstrumentor().instrument(
        tracer_provider=TracerProvider(), meter_provider=MeterProvider(), budgets=budgets, budget_ledger=ledger
    )
    client = openai.OpenAI(base_url=base_url, api_key="sk-worker", max_retries=0)
    completed = [0] * threads
    refused = [False] * threads
    errors: list[str] = []
    start = threading.Barrier(threads)

    def work(index: int) -> None:
        start.wait()
        with aimon_otel.attributes(tenant_id="acme"):
            for _ in range(MAX_CALLS_PER_THREAD):
                try:
                    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
                except aimon_otel.BudgetExceeded:
                    refused[index] = True
                    return
                except Exception as error:  # reported, not hidden
                    errors.append(repr(error))
                    return
                completed[index] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    aimon_otel.AimonInstrumentor().uninstrument()
    print(json.dumps({"completed": sum(completed), "refused": sum(refused), "errors": errors[:5]}))


if __name__ == "__main__":
    main()
