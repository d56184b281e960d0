"""Reserve, then settle: a guarded call's check holds its estimate in every block budget, the settle gives it back.

Guard-level calls: gpt-4o-mini with 120 input and 30 output tokens costs 120 x $0.15 + 30 x $0.60 per million
= $0.000036 (36,000 nano-USD); 1,000 output tokens could cost $0.0006 (600,000). Each case runs on the memory
ledger and on a real redis-server (two ledgers on it stand for two processes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path

import openai
import pytest
import redis

import aimon_otel
from aimon_otel import BudgetExceeded
from aimon_otel.budgets.guard import BudgetLedgerUnavailable, Guard
from aimon_otel.budgets.ledger import Hold, Ledger, MemoryLedger
from aimon_otel.budgets.redis_ledger import PREFIX, RedisLedger
from aimon_otel.budgets.spec import BudgetsFile, parse_budgets
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.usage import Usage
from aimon_otel.pricing import CostResult, PricingEngine
from aimon_otel.testing import FakeProvider
from tests.conftest import API_KEY, MESSAGES, make_telemetry
from tests.tools import RedisServer

CALL = 36_000
ENGINE = PricingEngine()
ACME = {"tenant.id": "acme"}


def spec(limit_usd: float, **extra: object) -> BudgetsFile:
    return parse_budgets(
        {
            "timezone": "UTC",
            "budgets": [
                {"name": "acme", "match": {"tenant_id": "acme"}, "limit_usd": limit_usd, "period": "day"}
                | {"action": "block"}
                | extra,
            ],
        },
        "test",
    )


def invocation(max_tokens: int | None = None) -> Invocation:
    call = Invocation("chat", "openai", "gpt-4o-mini")
    if max_tokens is not None:
        call.request_attributes["gen_ai.request.max_tokens"] = max_tokens
    return call


def settle(guard: Guard, call: Invocation, input_tokens: int = 120, output_tokens: int = 30) -> CostResult:
    call.usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    cost = ENGINE.price("openai", "gpt-4o-mini", call.usage)
    guard.record(call, cost, ACME)
    flush = getattr(guard.ledger, "flush", None)
    if flush is not None:  # the settle is the writer thread's: the next check's estimate waits for it here
        assert flush()
    return cost


def spent(guard: Guard) -> Decimal:
    flush = getattr(guard.ledger, "flush", None)
    if flush is not None:
        assert flush()
    (status,) = guard.status(tenant_id="acme")
    return Decimal(str(status.spent))


@pytest.fixture(params=["memory", "redis"])
def ledgers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Ledger]]:
    """Ledgers on one store: the same memory ledger twice, or a new Redis connection (another process) each time."""
    if request.param == "memory":
        memory = MemoryLedger()
        yield lambda: memory
        return
    made: list[RedisLedger] = []
    with RedisServer(tmp_path) as server:

        def connect() -> Ledger:
            made.append(RedisLedger.from_url(server.url))
            return made[-1]

        yield connect
        for ledger in made:
            ledger.close()


def test_a_call_in_flight_is_counted_at_its_estimate_by_every_check(ledgers: Callable[[], Ledger]) -> None:
    """Two calls in flight hold $0.000036 each: a third check (another process) sees $0.000108 of $0.0001 and
    refuses, though only $0.000036 has been settled. Without holds it would have let the call go."""
    budgets = spec(0.0001)
    first, second = Guard(budgets, ledgers(), engine=ENGINE), Guard(budgets, ledgers(), engine=ENGINE)
    warm = invocation()
    assert first.check(warm, ACME) is None
    assert warm.held is not None and warm.held.held == (0,)  # no estimate yet: nothing held
    settle(first, warm)  # the budget's running estimate is now this call's cost
    in_flight = [invocation(), invocation()]
    assert first.check(in_flight[0], ACME) is None
    assert second.check(in_flight[1], ACME) is None
    assert [call.held.held for call in in_flight if call.held is not None] == [(CALL,), (CALL,)]
    refused = second.check(invocation(), ACME)
    assert isinstance(refused, BudgetExceeded) and refused.spent_usd == pytest.approx(3 * CALL / 1e9, abs=1e-15)
    settle(first, in_flight[0])
    settle(second, in_flight[1])
    assert spent(first) == spent(second) == Decimal("0.000108")  # exact: each hold given back once


def test_the_estimate_follows_the_calls_and_max_tokens_is_its_floor(ledgers: Callable[[], Ledger]) -> None:
    guard = Guard(spec(1), ledgers(), engine=ENGINE)

    def held(max_tokens: int | None = None, output_tokens: int = 30) -> int:
        call = invocation(max_tokens)
        assert guard.check(call, ACME) is None and call.held is not None
        settle(guard, call, output_tokens=output_tokens)
        return call.held.held[0]

    assert held() == 0
    assert held() == CALL
    assert held(max_tokens=1000) == 600_000  # max_tokens at the output price, above the estimate
    assert held(max_tokens=10) == CALL  # 10 tokens could cost $0.000006: the estimate is larger
    assert held(output_tokens=10) == CALL  # this call costs 120 x 150 + 10 x 600 = 24,000
    assert held() == CALL - (CALL - 24_000) // 8  # down an eighth of the gap: 34,500
    assert held(output_tokens=40) == CALL  # back up to the 36,000 call at once; this one costs 42,000
    assert held() == 42_000
    assert spent(guard) == Decimal("0.000282")  # 4 x 36 + 24 + 36 + 42 + 36 micro-dollars, holds given back


def test_a_refused_call_holds_nothing_and_a_token_budget_holds_tokens(ledgers: Callable[[], Ledger]) -> None:
    budgets = parse_budgets(
        {"budgets": [{"name": "t", "limit_tokens": 400, "period": "day", "action": "block"}]}, "test"
    )
    guard = Guard(budgets, ledgers(), engine=ENGINE)
    calls = []
    for _ in range(3):  # 150 tokens each: the third check sees 150 settled + 150 held = 300, under 400
        call = invocation()
        assert guard.check(call, ACME) is None
        calls.append(call)
        if len(calls) == 1:
            settle(guard, call)
    assert [c.held.held for c in calls if c.held is not None] == [(0,), (150,), (150,)]
    refused = invocation(max_tokens=10)
    assert isinstance(guard.check(refused, ACME), BudgetExceeded)  # 150 + 300 held >= 400
    assert refused.held is None
    for call in calls[1:]:
        settle(guard, call)
    assert spent(guard) == 450


def test_many_threads_stop_at_the_limit_with_exact_totals_in_one_process(tmp_path: Path, fake: FakeProvider) -> None:
    """The memory ledger's holds through the real SDK: 32 threads call until refused; every call that ran is
    counted to the nano-dollar and past the limit only calls already in flight got through."""
    limit_calls, threads = 200, 32
    path = tmp_path / "budgets.yaml"
    path.write_text(
        f"budgets:\n  - {{name: shared, match: {{tenant_id: acme}}, limit_usd: {Decimal(limit_calls * 33) / 10**6}, "
        "period: day, action: block}\n"
    )
    telemetry = make_telemetry(budgets=str(path))
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)
    completed = [0] * threads
    refused = [False] * threads
    start = threading.Barrier(threads)

    def work(index: int) -> None:
        start.wait()
        with aimon_otel.attributes(tenant_id="acme"):
            while True:
                try:
                    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                except BudgetExceeded:
                    refused[index] = True
                    return
                completed[index] += 1

    try:
        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        (status,) = aimon_otel.budget_status(tenant_id="acme")
    finally:
        telemetry.instrumentor.uninstrument()
    assert all(refused)
    total = sum(completed)
    assert Decimal(str(status.spent)) == total * Decimal("0.000033")
    assert limit_calls <= total < limit_calls + threads


class _AnswerLost(RedisLedger):
    """The check's script runs in Redis, and its answer is lost on the way back (a timeout), once."""

    lose = True

    def _reserve_in_redis(self, call_id: str, holds: Sequence[Hold]) -> tuple[int, ...]:
        held = super()._reserve_in_redis(call_id, holds)
        if self.lose:
            self.lose = False
            raise redis.exceptions.TimeoutError("Timeout reading from socket")
        return held


@pytest.mark.parametrize("fail", ["open", "closed"])
def test_a_check_whose_answer_was_lost_counts_the_call_once(tmp_path: Path, fail: str) -> None:
    """The hold is in Redis but this process never heard so. Fail-open: the call goes and its settle gives the
    hold back from Redis's own record. Fail-closed: the call is refused and the hold given back alone."""
    budgets = spec(1)
    with RedisServer(tmp_path) as server:
        ledger = _AnswerLost(redis.Redis.from_url(server.url, socket_timeout=0.5), fail_closed=fail == "closed")
        guard = Guard(budgets, ledger, engine=ENGINE)
        try:
            ledger.lose = False
            warm = invocation()
            guard.check(warm, ACME)
            settle(guard, warm)  # an estimate: the lost check holds $0.000036
            assert ledger.flush()
            ledger.lose = True
            call = invocation()
            verdict = guard.check(call, ACME)
            direct = redis.Redis.from_url(server.url)
            assert direct.exists(PREFIX + "hold:" + str(call.call_id))  # the hold went in
            ledger._down_until = 0.0  # the next retry now, not in a second
            if fail == "open":
                assert verdict is None and call.held is not None and call.held.held == (0,)
                settle(guard, call)
                expected = Decimal("0.000072")
            else:
                assert isinstance(verdict, BudgetLedgerUnavailable) and call.held is None
                expected = Decimal("0.000036")
            assert spent(guard) == expected
            assert not direct.exists(PREFIX + "hold:" + str(call.call_id))
        finally:
            ledger.close()


def test_the_settle_does_not_wait_for_redis(tmp_path: Path) -> None:
    """Redis paused for writes for 2 s: the check was made before; the settle returns at once (it would take the
    pause, or the 0.5 s socket timeout, if it waited) and lands once, after, though the writer's first try timed out."""
    budgets = spec(1)
    with RedisServer(tmp_path) as server:
        ledger = RedisLedger.from_url(server.url)
        guard = Guard(budgets, ledger, engine=ENGINE)
        try:
            call = invocation()
            assert guard.check(call, ACME) is None
            redis.Redis.from_url(server.url).execute_command("CLIENT", "PAUSE", "2000", "WRITE")
            started = time.perf_counter()
            call.usage = Usage(input_tokens=120, output_tokens=30)
            guard.record(call, ENGINE.price("openai", "gpt-4o-mini", call.usage), ACME)
            assert time.perf_counter() - started < 0.5
            assert ledger.pending == 1
            assert spent(guard) == Decimal("0.000036")
        finally:
            ledger.close()


def test_a_call_whose_process_died_stays_counted_at_its_estimate(tmp_path: Path) -> None:
    """A hold that is never settled is not expired: the call may have been billed, so it counts at its estimate
    until the period's slot itself expires."""
    budgets = spec(1)
    with RedisServer(tmp_path) as server:
        first = RedisLedger.from_url(server.url)
        guard = Guard(budgets, first, engine=ENGINE)
        warm = invocation()
        guard.check(warm, ACME)
        settle(guard, warm)
        assert first.flush()
        dying = invocation()
        assert guard.check(dying, ACME) is None  # then the process dies: no settle
        first.close()
        survivor = Guard(budgets, RedisLedger.from_url(server.url), engine=ENGINE)
        try:
            assert spent(survivor) == Decimal("0.000072")
            ttl = redis.Redis.from_url(server.url).ttl(PREFIX + "hold:" + str(dying.call_id))
            assert ttl > 86400  # kept past the day's end: the slot it describes lives as long
        finally:
            survivor.ledger.close()


def test_a_balance_hold_record_outlives_each_call_not_the_first(tmp_path: Path) -> None:
    """A prepaid balance never resets, so the guard keeps its check's holds (and the ledger their command) for
    good; the record of what a call held must still be kept ``HOLD_RECORD_SECONDS`` past *that* call, not
    past the first check's: a record gone before its settle would let a lost answer count the call twice."""
    import time_machine

    from aimon_otel.budgets.credits import Credits
    from aimon_otel.budgets.redis_ledger import HOLD_RECORD_SECONDS

    budgets = parse_budgets(
        {
            "timezone": "UTC",
            "budgets": [
                {"name": "acme-credits", "match": {"tenant_id": "acme"}, "for_each": "tenant_id", "credits": True}
                | {"action": "block"},
            ],
        },
        "test",
    )
    with RedisServer(tmp_path) as server:
        ledger = RedisLedger.from_url(server.url)
        guard = Guard(budgets, ledger, engine=ENGINE)
        direct = redis.Redis.from_url(server.url)
        try:
            Credits(guard).add("acme-credits", "acme", usd=10, reference="pack-1", by="test")
            first = invocation(max_tokens=100)
            assert guard.check(first, ACME) is None
            settle(guard, first)
            with time_machine.travel(time.time() + 60 * 86400, tick=True):
                later = invocation(max_tokens=100)
                assert guard.check(later, ACME) is None  # the same holds as 60 days ago
                expires_at = direct.expiretime(PREFIX + "hold:" + str(later.call_id))
                assert expires_at >= time.time() + HOLD_RECORD_SECONDS - 60
        finally:
            ledger.close()


@pytest.mark.parametrize("queued", [3, 70])
def test_a_process_counts_its_own_settles_not_yet_written(tmp_path: Path, queued: int) -> None:
    """Settles this process queued and Redis has not yet confirmed count in its next check: each by its marker
    (few of them) or all at once (past 64, while the writer catches up). The writer is held back here."""
    import os

    with RedisServer(tmp_path) as server:
        ledger = RedisLedger.from_url(server.url)
        ledger._writer_pid = os.getpid()  # no writer thread: the settles stay queued
        limit = Decimal(queued * CALL) / 10**9
        guard = Guard(spec(float(limit)), ledger, engine=ENGINE)  # reached by the queued settles alone
        try:
            for _ in range(queued):
                call = invocation()
                assert guard.check(call, ACME) is None
                call.usage = Usage(input_tokens=120, output_tokens=30)
                guard.record(call, ENGINE.price("openai", "gpt-4o-mini", call.usage), ACME)
            assert ledger.pending == queued
            refused = guard.check(invocation(), ACME)
            assert isinstance(refused, BudgetExceeded) and refused.spent_usd == pytest.approx(queued * CALL / 1e9)
            ledger._writer_pid = 0
            ledger._start_writer()
            assert ledger.flush()  # then they land, each once
            assert spent(guard) == limit
        finally:
            ledger.close()
