"""Instructions per priced call and per guarded call, counted by callgrind: pricing and the budget guard alone.

    .venv/bin/python bench/unit_instructions.py [--runs 3]

Each figure is a slope: the workload run N and 3N times in fresh interpreters under callgrind,
(instructions(3N) - instructions(N)) / 2N, the median of ``--runs``, PYTHONHASHSEED=0, the garbage collector
off for the measured loop. Steady where ``bench/pricing.py`` and ``bench/budgets.py``'s wall-clock times move by
tens of percent. The guard's figure is ``bench/budgets.py``'s workload (20 budgets; 5 with plans: 4 match the
call) less the same script making its calls alone. Needs ``valgrind``.
"""

from __future__ import annotations

import argparse
import statistics

from instructions import HERE, instructions_of_script

PRICING = """
import gc, sys
sys.path.insert(0, {src!r})
from aimon_otel.instrumentation.usage import Usage
from aimon_otel.pricing import PricingEngine
engine = PricingEngine()
provider, model, usage = {case!r}[0], {case!r}[1], Usage(**{case!r}[2])
for _ in range(200):
    engine.price(provider, model, usage)
gc.collect(); gc.disable()
for _ in range({calls}):
    engine.price(provider, model, usage)
"""

GUARD = """
import gc, sys
sys.path.insert(0, {src!r}); sys.path.insert(0, {here!r})
import budgets
from aimon_otel.budgets.guard import Guard
from aimon_otel.budgets.ledger import MemoryLedger
from aimon_otel.budgets.spec import parse_budgets
guard = Guard(parse_budgets(budgets.budgets_file(20, {plans}), "bench"), MemoryLedger(), engine=budgets.ENGINE)
budgets.put_on_plans(guard)
for invocation, cost, attribution in budgets.calls_to_make(200):
    guard.check(invocation, attribution); guard.record(invocation, cost, attribution)
made = budgets.calls_to_make({calls})
gc.collect(); gc.freeze()
for invocation, cost, attribution in made if {guarded} else ():
    guard.check(invocation, attribution); guard.record(invocation, cost, attribution)
"""

CASES = {
    "gpt-4o-mini": (
        "openai",
        "gpt-4o-mini",
        {"input_tokens": 120, "output_tokens": 30, "cache_read_input_tokens": 40, "reasoning_output_tokens": 10},
    ),
    "claude-sonnet-4-5 (tiered)": (
        "anthropic",
        "claude-sonnet-4-5",
        {
            "input_tokens": 250_000,
            "output_tokens": 900,
            "cache_read_input_tokens": 50_000,
            "cache_creation_input_tokens": 3_000,
        },
    ),
}


def slope(template: str, calls: int, runs: int, **values: object) -> float:
    src = str(HERE.parent / "src")
    samples = []
    for _ in range(runs):
        low = instructions_of_script(template.format(src=src, here=str(HERE), calls=calls, **values))
        high = instructions_of_script(template.format(src=src, here=str(HERE), calls=3 * calls, **values))
        samples.append((high - low) / (2 * calls))
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for name, case in CASES.items():
        print(f"pricing {name}: {slope(PRICING, 1000, args.runs, case=case):,.0f} instructions a call", flush=True)
    for plans in (0, 5):
        guarded = slope(GUARD, 2000, args.runs, plans=plans, guarded=True)
        making = slope(GUARD, 2000, args.runs, plans=plans, guarded=False)
        print(
            f"guard, check + record, 20 budgets, {plans} with plans: {guarded - making:,.0f} instructions a call "
            f"({guarded:,.0f} with making the call's objects)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
