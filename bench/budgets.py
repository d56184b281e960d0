"""What the budget guard costs: added time per call (memory and Redis ledgers), and Redis memory per key.

    .venv/bin/python bench/budgets.py [--calls 3000] [--budgets 20] [--plans 5]

Needs Debian's ``redis-server`` for the Redis figures (started on a free port, stopped after).
The guard's work is measured on its own (``Guard.check`` before a call plus ``Guard.record``
after it, what the instrumented call adds for budgets), with ``--budgets`` budgets in the file, of
of which three match the call and the rest match other tenants; ``--plans`` of them (two that match)
list plans, the call's tenant and user are on one, acme has a per-key limit, and (with plans) the call
also draws from a prepaid credit balance: all read with the spend.
Times are medians of interleaved rounds; compare figures from one run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aimon_otel.budgets.guard import Guard
from aimon_otel.budgets.ledger import Increment, MemoryLedger, Settlement
from aimon_otel.budgets.spec import parse_budgets
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.usage import Usage
from aimon_otel.pricing import CostResult, PricingEngine

ENGINE = PricingEngine()


def budgets_file(count: int, plans: int = 0) -> dict[str, object]:
    """Three budgets a call to tenant acme by user u-1 counts against (every tenant's monthly block budget,
    every user's daily block budget, all spend over a rolling 30 days), the rest for other tenants; the
    first ``plans`` budgets counted for_each list plans."""
    budgets: list[dict[str, object]] = [
        {"name": "acme-monthly", "for_each": "tenant_id", "limit_usd": 1000, "period": "month", "action": "block"},
        {"name": "per-user-daily", "for_each": "user_id", "limit_usd": 1000, "period": "day", "action": "block"},
        {"name": "all-spend", "limit_usd": 100_000, "period": {"rolling": "30d"}},
    ]
    for index in range(count - len(budgets)):
        budgets.append({"name": f"tenant-{index}", "match": {"tenant_id": f"tenant-{index}"}, "limit_usd": 5,
                        "period": "month", "action": "block", "for_each": "user_id"})  # fmt: skip
    with_plans = [budget for budget in budgets if "for_each" in budget][:plans]
    for budget in with_plans:
        budget["plans"] = {"pro": 2000, "enterprise": 10_000}
    if plans:  # and one prepaid balance the call draws from, in place of another tenant's budget
        budgets[-1] = {"name": "acme-credits", "match": {"tenant_id": "acme"}, "for_each": "tenant_id",
                       "credits": True, "warn_below_usd": [10], "action": "block"}  # fmt: skip
    return {"timezone": "Europe/Berlin", "budgets": budgets}


def put_on_plans(guard: Guard) -> None:
    """acme and u-1 on pro, and acme's own limit in acme-monthly: what a SaaS's guard reads on each call."""
    from aimon_otel.budgets.limits import RunTimeLimits

    limits = RunTimeLimits(guard)
    if any(budget.plans for budget in guard.budgets.budgets):
        limits.set_plan("tenant_id", "acme", "pro", by="bench")
        limits.set_plan("user_id", "u-1", "pro", by="bench")
    limits.set_limit("acme-monthly", "acme", limit_usd=5000, by="bench")
    if any(budget.credits for budget in guard.budgets.budgets):
        from aimon_otel.budgets.credits import Credits

        Credits(guard).add("acme-credits", "acme", usd=1_000_000, reference="bench-pack", by="bench")


def per_call_us(guard: Guard, calls: int, rounds: int) -> float:
    """The median over rounds of the mean time per call."""
    samples = []
    for _ in range(rounds):
        made = calls_to_make(calls)
        start = time.perf_counter()
        for invocation, cost, attribution in made:
            guard.check(invocation, attribution)
            guard.record(invocation, cost, attribution)
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def calls_to_make(count: int) -> list[tuple[Invocation, CostResult, dict[str, str]]]:
    """A fresh invocation per call (each is held and settled under its own call id), made before the clock runs."""
    cost = ENGINE.price("openai", "gpt-4o-mini", Usage(input_tokens=120, output_tokens=30))
    attribution = {"tenant.id": "acme", "user.id": "u-1"}
    made = []
    for _ in range(count):
        invocation = Invocation("chat", "openai", "gpt-4o-mini")
        invocation.usage = Usage(input_tokens=120, output_tokens=30)
        made.append((invocation, cost, attribution))
    return made


def each_call_us(guard: Guard, calls: int, rounds: int, gap: float = 0.001) -> list[float]:
    """Every guarded call's own time: its check before and its record after, what the app's thread waits for,
    microseconds. ``gap`` stands for the LLM call between them (an LLM call takes far longer: the writer thread
    settles the previous call meanwhile, as it would in an app)."""
    samples: list[float] = []
    clock = time.perf_counter
    for _ in range(rounds):
        for invocation, cost, attribution in calls_to_make(calls):  # made before each call's clock starts
            start = clock()
            guard.check(invocation, attribution)
            checked = clock()
            time.sleep(gap)
            returned = clock()
            guard.record(invocation, cost, attribution)
            samples.append((checked - start + clock() - returned) * 1e6)
    return samples


def each_ping_us(client: object, calls: int, rounds: int, gap: float = 0.001) -> list[float]:
    """One ``PING`` round trip on the guard's connection, after the same idle ``gap`` as each guarded call
    (a round trip after an idle millisecond costs more than one in a tight loop: both wake up)."""
    samples: list[float] = []
    clock = time.perf_counter
    ping = client.ping  # type: ignore[attr-defined]
    for _ in range(rounds):
        for _ in range(calls):
            time.sleep(gap)
            start = clock()
            ping()
            samples.append((clock() - start) * 1e6)
    return samples


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def redis_memory(redis_url: str, keys: int) -> tuple[float, float]:
    """Bytes per ledger key (a budget, key and period of one tenant) and per call marker."""
    from aimon_otel.budgets.redis_ledger import RedisLedger

    ledger = RedisLedger.from_url(redis_url)
    client = ledger.client
    client.flushall()
    before = int(client.info("memory")["used_memory"])
    expires = time.time() + 40 * 86400
    for start in range(0, keys, 500):
        increments = [
            Increment(f"acme-monthly|1793574000|tenant-{i:06d}", 33_000, expires) for i in range(start, start + 500)
        ]
        ledger.add(f"bench-{start}", Settlement.of(increments), [item.amount for item in increments])
    ledger.flush()
    middle = int(client.info("memory")["used_memory"])
    one = Settlement.of([Increment("acme-monthly|1793574000|tenant-000000", 1, expires)])
    for call in range(keys):  # one small add per call: its marker, and the same key again
        ledger.add(f"{'0' * 16}-{call}", one, [1])
    ledger.flush()
    after = int(client.info("memory")["used_memory"])
    ledger.close()
    return (middle - before) / (keys + keys // 500), (after - middle) / keys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--budgets", type=int, default=20)
    parser.add_argument("--plans", type=int, default=5, help="budgets with plans (0: the file's limits only)")
    args = parser.parse_args()
    spec = parse_budgets(budgets_file(args.budgets, args.plans), "bench")
    engine = ENGINE
    memory = Guard(spec, MemoryLedger(), engine=engine)
    put_on_plans(memory)
    matched = memory.matching(("acme", "u-1", None, None, "openai", "gpt-4o-mini"))
    print(f"{args.budgets} budgets, {args.plans} with plans; a call matches {len(matched)} of them")
    print(f"memory ledger: {per_call_us(memory, args.calls, args.rounds):.1f} us per call (check + record)")
    server = shutil.which("redis-server")
    if server is None:
        print("redis-server not installed: no Redis figures (apt-get install redis-server)")
        return 0
    from tests.tools import RedisServer

    with tempfile.TemporaryDirectory() as directory, RedisServer(Path(directory)) as redis_server:
        from aimon_otel.budgets.redis_ledger import RedisLedger

        shared = Guard(spec, RedisLedger.from_url(redis_server.url), engine=engine)
        put_on_plans(shared)
        calls = max(200, args.calls // 10)
        client = shared.ledger.client  # type: ignore[attr-defined]
        guarded: list[float] = []
        pings: list[float] = []
        for _ in range(args.rounds):  # interleaved, so both see the same machine
            guarded += each_call_us(shared, calls, 1)
            pings += each_ping_us(client, calls, 1)
        print(
            "redis ledger (loopback), block budgets, check + record per call (one round trip: the check; the settle "
            "is the writer thread's):"
        )
        for name, at in (("median", 0.5), ("p99", 0.99)):
            call, ping = percentile(guarded, at), percentile(pings, at)
            print(
                f"  {name}: {call:.1f} us; one PING round trip on the same connection {ping:.1f} us; "
                f"added beyond one round trip {call - ping:+.1f} us (target <= +30)"
            )
        alerting = budgets_file(args.budgets, args.plans)
        for budget in alerting["budgets"]:  # type: ignore[union-attr]
            budget["action"] = "alert"
        watching = Guard(parse_budgets(alerting, "bench"), RedisLedger.from_url(redis_server.url), engine=engine)
        print(
            f"redis ledger (loopback), alert budgets only: {per_call_us(watching, calls, args.rounds):.1f} us per call "
            "(no check; the add is written by the writer thread)"
        )
        watching.ledger.close()
        per_key, per_marker = redis_memory(redis_server.url, 20_000)
        print(
            f"redis memory: {per_key:.0f} bytes per ledger key, {per_marker:.0f} bytes per call marker (20,000 of each)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
