"""Prepaid credits: a balance that top-ups add to once per reference and calls draw their exact cost from.

Each gpt-4o-mini chat call to the fake provider costs $0.000033 (33,000 nano-USD).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import redis

import aimon_otel
from aimon_otel import AimonConfigError, BudgetExceeded, CreditsExhausted
from aimon_otel.budgets.redis_ledger import PREFIX
from aimon_otel.middleware import BudgetExceededWSGIMiddleware
from aimon_otel.testing import FakeProvider
from tests.conftest import MESSAGES, Telemetry, make_telemetry
from tests.tools import RedisServer, run_budget_workers

CHAT_NANO = 33_000
CLI = str(Path(sys.executable).with_name("aimon-otel"))
BUDGETS = """\
budgets:
  - name: tenant-credits
    for_each: tenant_id
    credits: true
    warn_below_usd: [0.0001, 0.00005]
    action: block
"""


@pytest.fixture
def budgets_file(tmp_path: Path) -> str:
    path = tmp_path / "budgets.yaml"
    path.write_text(BUDGETS)
    return str(path)


@pytest.fixture
def guarded(budgets_file: str) -> Iterator[Telemetry]:
    made = make_telemetry(budgets=budgets_file)
    yield made
    made.instrumentor.uninstrument()


def chat(client: openai.OpenAI, tenant: str = "acme") -> Any:
    with aimon_otel.attributes(tenant_id=tenant):
        return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def test_calls_draw_the_balance_down_and_are_refused_when_it_is_used_up(
    guarded: Telemetry, client: openai.OpenAI, fake: FakeProvider
) -> None:
    events: list[tuple[str, float | None, float | None]] = []
    unsubscribe = aimon_otel.on_budget_event(lambda e: events.append((e.kind, e.balance, e.threshold)))
    try:
        with pytest.raises(CreditsExhausted):  # no credits yet: a balance of 0 is used up
            chat(client)
        top_up = aimon_otel.add_credits("tenant-credits", key="acme", usd="0.0001", reference="pay_1", reason="pack")
        assert (top_up.added, top_up.balance_usd) == (True, 0.0001)
        for _ in range(4):  # 100,000 nano: three calls leave 1,000; the fourth starts above 0 and goes through
            chat(client)
        sent = len(fake.requests)
        with pytest.raises(CreditsExhausted) as refused:
            chat(client)
    finally:
        unsubscribe()
    assert len(fake.requests) == sent  # refused before sending
    assert isinstance(refused.value, BudgetExceeded)  # apps that catch BudgetExceeded catch this too
    assert refused.value.balance_usd == pytest.approx((100_000 - 4 * CHAT_NANO) / 1e9, abs=1e-15)
    assert "used up" in str(refused.value) and "until credits are added" in str(refused.value)
    assert aimon_otel.credit_balance("tenant-credits", key="acme") == (100_000 - 4 * CHAT_NANO) / 1e9
    assert [kind for kind, _, _ in events] == [
        "blocked", "credits_added", "credits_low", "credits_low", "credits_exhausted", "blocked",
    ]  # fmt: skip
    assert [threshold for kind, _, threshold in events if kind == "credits_low"] == [0.0001, 0.00005]
    (status,) = aimon_otel.budget_status(tenant_id="acme")
    assert (status.state, status.balance, status.period) == ("over", -0.000032, "credits")
    assert status.as_dict()["balance"] == -0.000032

    data = guarded.reader.get_metrics_data()
    points = [
        (dict(p.attributes), p.value)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "aimon.budget.balance"
        for p in m.data.data_points
    ]
    assert points == [({"aimon.budget.name": "tenant-credits", "aimon.budget.key": "acme"}, -0.000032)]
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    spent = [
        p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        if m.name == "aimon.budget.spent" for p in m.data.data_points
    ]  # fmt: skip
    assert "aimon.budget.balance" in names and spent == []  # a balance is not a period's spend


def test_a_reference_adds_once_and_another_amount_is_refused(guarded: Telemetry) -> None:
    first = aimon_otel.add_credits("tenant-credits", key="acme", usd=100, reference="pay_123", by="billing")
    again = aimon_otel.add_credits("tenant-credits", key="acme", usd=100, reference="pay_123")
    assert (first.added, again.added, again.balance_usd) == (True, False, 100.0)
    with pytest.raises(AimonConfigError, match=r"reference 'pay_123' was already used for \$100.00 to acme"):
        aimon_otel.add_credits("tenant-credits", key="acme", usd=50, reference="pay_123")
    refund = aimon_otel.add_credits("tenant-credits", key="acme", usd="-2.50", reference="refund_7", reason="goodwill")
    assert refund.balance_usd == 97.5
    history = aimon_otel.budget_history("tenant-credits")
    assert [(h["event"], h["amount"], h["balance"]) for h in history] == [
        ("credits_added", "-2500000000", "97500000000"),
        ("credits_added", "100000000000", "100000000000"),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda: aimon_otel.add_credits("nope", key="acme", usd=1, reference="r"), "no credit budget named 'nope'"),
        (lambda: aimon_otel.add_credits("tenant-credits", usd=1, reference="r"), "give the key"),
        (lambda: aimon_otel.add_credits("tenant-credits", key="acme", usd=0, reference="r"), "non-zero"),
        (lambda: aimon_otel.add_credits("tenant-credits", key="acme", usd="inf", reference="r"), "finite"),
        (lambda: aimon_otel.add_credits("tenant-credits", key="acme", usd=1, reference=" "), "reference"),
    ],
)
def test_bad_top_ups_are_refused_and_change_nothing(guarded: Telemetry, change: Any, message: str) -> None:
    with pytest.raises(AimonConfigError, match=message):
        change()
    assert aimon_otel.credit_balance("tenant-credits", key="acme") == 0.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("budgets: [{name: c, credits: true, period: month}]", "key 'period': a credits budget is a balance"),
        ("budgets: [{name: c, credits: true, limit_usd: 5}]", "key 'limit_usd': a credits budget"),
        ("budgets: [{name: c, limit_usd: 5, period: day, overdraft_usd: 1}]", "only a credits budget"),
        ("budgets: [{name: c, credits: true, warn_below_usd: [-1]}]", "key 'warn_below_usd': -1 must be"),
        ("budgets: [{name: c, credits: yes-please}]", "key 'credits'"),
    ],
)
def test_bad_credit_budgets_name_the_key_and_the_fix(tmp_path: Path, text: str, message: str) -> None:
    from aimon_otel.budgets import load_budgets

    path = tmp_path / "budgets.yaml"
    path.write_text(text)
    with pytest.raises(AimonConfigError, match=message):
        load_budgets(path)


def test_the_middleware_answers_402_with_the_balance(guarded: Telemetry, client: openai.OpenAI) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        chat(client, tenant="globex")  # globex has no credits
        start_response("200 OK", [])
        return [b"ok"]

    seen: dict[str, Any] = {}
    body = BudgetExceededWSGIMiddleware(app)({}, lambda status, headers, exc_info=None: seen.update(status=status))
    answer = json.loads(b"".join(body))
    assert seen["status"] == "402 Payment Required"
    assert (answer["error"], answer["budget"], answer["key"], answer["balance_usd"]) == (
        "credits_exhausted",
        "tenant-credits",
        "globex",
        0.0,
    )


def test_eight_processes_of_64_threads_draw_one_balance_exactly(tmp_path: Path, fake: FakeProvider) -> None:
    """A balance worth 1,000 calls, 8 processes x 64 threads calling until refused: the balance ends at
    top-ups minus the exact cost of every call that ran; past zero only calls already in flight ran (at
    most one per thread). Two top-ups with one reference sent at once add once."""
    processes, threads, calls_worth = 8, 64, 1000
    file = tmp_path / "budgets.yaml"
    file.write_text("budgets:\n  - {name: shared-credits, match: {tenant_id: acme}, credits: true, action: block}\n")
    with RedisServer(tmp_path) as server:
        shared = ("--file", str(file), "--ledger", server.url)
        usd = f"{calls_worth * CHAT_NANO / 1e9:.9f}"
        racers = [
            subprocess.Popen(
                [CLI, "credits", "add", "shared-credits", "--usd", usd, "--reference", "pay_1", *shared],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [racer.communicate(timeout=60) for racer in racers]
        assert [racer.returncode for racer in racers] == [0, 0], outputs
        assert sorted("already added" in out for out, _ in outputs) == [False, True]
        requests_before = len(fake.requests)
        results = run_budget_workers(fake.openai_base_url, server.url, str(file), processes, threads)
        completed = sum(r["completed"] for r in results)
        assert [r["errors"] for r in results] == [[]] * processes
        assert completed == len(fake.requests) - requests_before
        balance = int(redis.Redis.from_url(server.url).get(PREFIX + "shared-credits|0|") or 0)
        assert balance == calls_worth * CHAT_NANO - completed * CHAT_NANO  # exact, to the nano-dollar
        assert sum(r["refused"] for r in results) == processes * threads
        assert calls_worth <= completed <= calls_worth + processes * threads

        # Redis stopped (SAVE) and started again: the balance and the history are still there
        server.stop(save=True)
        server.start()
        shown = json.loads(
            subprocess.run(
                [CLI, "credits", "balance", "shared-credits", "--json", *shared],
                capture_output=True, text=True, timeout=60, check=True,
            ).stdout
        )  # fmt: skip
        assert shown["balance_usd"] == balance / 1e9
        history = json.loads(
            subprocess.run(
                [CLI, "credits", "history", "shared-credits", "--json", *shared],
                capture_output=True, text=True, timeout=60, check=True,
            ).stdout
        )  # fmt: skip
        assert [(h["reference"], h["balance"]) for h in history] == [("pay_1", calls_worth * CHAT_NANO / 1e9)]


def test_the_credit_cli_needs_a_shared_ledger(budgets_file: str) -> None:
    failed = subprocess.run(
        [CLI, "credits", "add", "tenant-credits", "--key", "acme", "--usd", "5", "--reference", "p",
         "--file", budgets_file, "--ledger", "memory"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert failed.returncode == 2 and "needs the shared ledger" in failed.stderr


def test_large_balances_stay_exact_in_redis(tmp_path: Path, budgets_file: str) -> None:
    """$1,000,000.000000001 in nano-USD is past what Lua's number formatting keeps (it says 1e+15)."""
    from aimon_otel.budgets import Guard, load_budgets
    from aimon_otel.budgets.credits import Credits
    from aimon_otel.budgets.redis_ledger import RedisLedger

    with RedisServer(tmp_path) as server:
        ledger = RedisLedger.from_url(server.url)
        try:
            credits = Credits(Guard(load_budgets(budgets_file), ledger))
            done = credits.add("tenant-credits", "acme", usd="1000000.000000001", reference="big")
            assert done.balance_usd == 1_000_000.000000001
            assert int(redis.Redis.from_url(server.url).get(PREFIX + "tenant-credits|0|acme") or 0) == 10**15 + 1
            (entry,) = credits.history("tenant-credits", "acme")
            assert entry["balance"] == (10**15 + 1) / 1e9
        finally:
            ledger.close()


@pytest.mark.parametrize("fail", ["open", "closed"])
def test_redis_away_with_credits_behaves_as_for_period_budgets(
    tmp_path: Path, budgets_file: str, client: openai.OpenAI, fake: FakeProvider, fail: str
) -> None:
    """Fail-open: calls go through on the balance last read plus what was drawn since, their cost is kept
    and drawn once Redis is back (the balance exact). Fail-closed: a call the credit budget covers is
    refused (BudgetLedgerUnavailable), nothing sent, nothing lost."""
    import time

    from aimon_otel import BudgetLedgerUnavailable
    from aimon_otel.budgets.redis_ledger import RETRY_SECONDS, RedisLedger

    with RedisServer(tmp_path) as server:
        telemetry = make_telemetry(budgets=budgets_file, budget_ledger=server.url, budget_fail=fail)
        try:
            pipeline = telemetry.instrumentor.pipeline
            assert pipeline is not None and pipeline.guard is not None
            ledger = pipeline.guard.ledger
            assert isinstance(ledger, RedisLedger)
            aimon_otel.add_credits("tenant-credits", key="acme", usd="0.001", reference="pack")
            chat(client)
            assert ledger.flush()
            server.stop(save=True)
            sent = len(fake.requests)
            if fail == "closed":
                with pytest.raises(BudgetLedgerUnavailable):
                    chat(client)
                assert len(fake.requests) == sent
                drawn = 1
            else:
                for _ in range(3):
                    chat(client)
                assert len(fake.requests) == sent + 3 and ledger.pending == 3
                drawn = 4
            server.start()
            time.sleep(RETRY_SECONDS + 0.1)
            assert ledger.flush()
            assert aimon_otel.credit_balance("tenant-credits", key="acme") == (1_000_000 - drawn * CHAT_NANO) / 1e9
            stored = int(redis.Redis.from_url(server.url).get(PREFIX + "tenant-credits|0|acme") or 0)
            assert stored == 1_000_000 - drawn * CHAT_NANO
        finally:
            telemetry.instrumentor.uninstrument()
