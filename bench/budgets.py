"""What the budget guard costs: added time per call (memory and Redis ledgers), and Redis memory per key.

    .venv/bin/python bench/budgets.py [--calls 3000] [--budgets 20]

Needs Debian's ``redis-server`` for the Redis figures (started on a free port, stopped after).
The guard's work is measured on its own (``Guard.check`` before a call plus ``Guard.record``
after it, what the instrumented call adds for budgets), with ``--budgets`` budgets in the file, of
which one in four is a ``block`` budget that matches the call and the rest match other tenants.
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
from aimon_otel.budgets.ledger import Increment, MemoryLedger
from aimon_otel.budgets.spec import parse_budgets
from aimon_otel.invocation import Invocation
from aimon_otel.pricing import PricingEngine
from aimon_otel.usage import Usage


def budgets_file(count: int) -> dict[str, object]:
    """Three budgets a call to tenant acme by user u-1 counts against (acme's monthly block budget, every
    user's daily block budget, all spend over a rolling 30 days), the rest for other tenants."""
    budgets: list[dict[str, object]] = [
        {
            "name": "acme-monthly",
            "match": {"tenant_id": "acme"},
            "limit_usd": 1000,
            "period": "month",
            "action": "block",
        },
        {"name": "per-user-daily", "for_each": "user_id", "limit_usd": 1000, "period": "day", "action": "block"},
        {"name": "all-spend", "limit_usd": 100_000, "period": {"rolling": "30d"}},
    ]
    for index in range(count - len(budgets)):
        budgets.append({"name": f"tenant-{index}", "match": {"tenant_id": f"tenant-{index}"}, "limit_usd": 5,
                        "period": "month", "action": "block"})  # fmt: skip
    return {"timezone": "Europe/Berlin", "budgets": budgets}


def per_call_us(guard: Guard, calls: int, rounds: int) -> float:
    engine = PricingEngine()
    invocation = Invocation("chat", "openai", "gpt-4o-mini")
    invocation.usage = Usage(input_tokens=120, output_tokens=30)
    cost = engine.price("openai", "gpt-4o-mini", invocation.usage)
    attribution = {"tenant.id": "acme", "user.id": "u-1"}
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            guard.check(invocation, attribution)
            guard.record(invocation, cost, attribution)
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


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
        ledger.add(f"bench-{start}", increments, [])
    ledger.flush()
    middle = int(client.info("memory")["used_memory"])
    for call in range(keys):  # one small add per call: its marker, and the same key again
        ledger.add(f"{'0' * 16}-{call}", [Increment("acme-monthly|1793574000|tenant-000000", 1, expires)], [])
    ledger.flush()
    after = int(client.info("memory")["used_memory"])
    ledger.close()
    return (middle - before) / (keys + keys // 500), (after - middle) / keys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--budgets", type=int, default=20)
    args = parser.parse_args()
    spec = parse_budgets(budgets_file(args.budgets), "bench")
    engine = PricingEngine()
    memory = Guard(spec, MemoryLedger(), engine=engine)
    matched = memory.matching(("acme", "u-1", None, None, "openai", "gpt-4o-mini"))
    print(f"{args.budgets} budgets; a call matches {len(matched)} of them")
    print(f"memory ledger: {per_call_us(memory, args.calls, args.rounds):.1f} us per call (check + record)")
    server = shutil.which("redis-server")
    if server is None:
        print("redis-server not installed: no Redis figures (apt-get install redis-server)")
        return 0
    from tests.tools import RedisServer

    with tempfile.TemporaryDirectory() as directory, RedisServer(Path(directory)) as redis_server:
        from aimon_otel.budgets.redis_ledger import RedisLedger

        shared = Guard(spec, RedisLedger.from_url(redis_server.url), engine=engine)
        calls = max(200, args.calls // 10)
        print(
            f"redis ledger (loopback), block budgets: {per_call_us(shared, calls, args.rounds):.1f} us per call "
            "(check + record: two round trips)"
        )
        alerting = budgets_file(args.budgets)
        for budget in alerting["budgets"]:  # type: ignore[union-attr]
            budget["action"] = "alert"
        watching = Guard(parse_budgets(alerting, "bench"), RedisLedger.from_url(redis_server.url), engine=engine)
        print(
            f"redis ledger (loopback), alert budgets only: {per_call_us(watching, calls, args.rounds):.1f} us per call "
            "(no check; the add is written by the writer thread)"
        )
        watching.ledger.close()
        ping = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(calls):
                shared.ledger.client.ping()  # type: ignore[attr-defined]
            ping.append((time.perf_counter() - start) / calls * 1e6)
        print(f"  one PING round trip on the same connection: {statistics.median(ping):.1f} us")
        per_key, per_marker = redis_memory(redis_server.url, 20_000)
        print(
            f"redis memory: {per_key:.0f} bytes per ledger key, {per_marker:.0f} bytes per call marker (20,000 of each)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
