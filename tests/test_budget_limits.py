"""Limits that change while the app runs: plans and per-key limits, read with the spend, audited.

Each gpt-4o-mini chat call to the fake provider costs $0.000033 (genai-prices: 120 input tokens at
$0.15, 30 output at $0.60 per million, 40 of the input cached at $0.075). tenant-monthly's file limit
of $0.0001 lets a tenant make four calls (the fourth starts at $0.000099) and refuses the fifth.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openai
import pytest
import time_machine

import aimon_otel
from aimon_otel import AimonConfigError, BudgetExceeded
from aimon_otel.testing import FakeProvider
from tests.conftest import MESSAGES, Telemetry, make_telemetry
from tests.tools import RedisServer

BERLIN = ZoneInfo("Europe/Berlin")
CLI = str(Path(sys.executable).with_name("aimon-otel"))
BUDGETS = """\
timezone: Europe/Berlin
budgets:
  - name: tenant-monthly
    for_each: tenant_id
    period: month
    limit_usd: 0.0001
    plans: {pro: 0.001, enterprise: 0.01}
    action: block
  - name: tenant-daily
    for_each: tenant_id
    period: day
    limit_usd: 0.001
    plans: {pro: 0.002}
    action: block
  - name: tokens-monthly
    for_each: tenant_id
    period: month
    limit_tokens: 100000
    plans: {pro: 200000}
  - name: everything
    period: month
    limit_usd: 100
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


def call(client: openai.OpenAI, tenant: str = "acme") -> str:
    with aimon_otel.attributes(tenant_id=tenant):
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        except BudgetExceeded as refusal:
            return f"refused {refusal.budget}"
    return "ok"


def status(budget: str, tenant: str = "acme") -> tuple[float, float, str]:
    (found,) = [s for s in aimon_otel.budget_status(tenant_id=tenant) if s.budget == budget]
    return found.spent, found.limit, found.limit_source


def test_an_upgrade_applies_at_the_next_call_and_keeps_the_spend(guarded: Telemetry, client: openai.OpenAI) -> None:
    assert [call(client) for _ in range(5)] == ["ok"] * 4 + ["refused tenant-monthly"]
    assert status("tenant-monthly") == (pytest.approx(4 * 0.000033), 0.0001, "file")

    events: list[tuple[str, str, float, str | None]] = []
    unsubscribe = aimon_otel.on_budget_event(lambda e: events.append((e.kind, e.budget, e.limit, e.source)))
    aimon_otel.set_plan(tenant_id="acme", plan="pro", by="sales@example.com", reason="upgraded")
    unsubscribe()
    assert sorted(events) == [
        ("plan_changed", "tenant-daily", 0.002, "plan pro"),
        ("plan_changed", "tenant-monthly", 0.001, "plan pro"),
        ("plan_changed", "tokens-monthly", 200000.0, "plan pro"),
    ]
    assert call(client) == "ok"  # the fifth call, no restart
    assert status("tenant-monthly") == (pytest.approx(5 * 0.000033), 0.001, "plan pro")  # the month's spend kept
    assert status("tenant-daily")[1:] == (0.002, "plan pro")
    assert status("tokens-monthly")[1:] == (200000.0, "plan pro")
    assert status("tenant-monthly", "globex")[1:] == (0.0001, "file")  # another tenant: its own plan (none)

    aimon_otel.set_plan(tenant_id="acme", plan="enterprise")
    assert status("tenant-monthly")[1:] == (0.01, "plan enterprise")
    assert status("tenant-daily")[1:] == (0.001, "file")  # enterprise is not among tenant-daily's plans

    aimon_otel.set_plan(tenant_id="acme", plan=None)
    assert call(client) == "refused tenant-monthly"
    history = aimon_otel.budget_history("tenant-monthly", "acme")
    assert [(h["event"], h["old"], h["new"]) for h in history] == [
        ("plan_changed", {"plan": "enterprise"}, None),
        ("plan_changed", {"plan": "pro"}, {"plan": "enterprise"}),
        ("plan_changed", None, {"plan": "pro"}),
    ]
    assert history[-1]["by"] == "sales@example.com" and history[-1]["reason"] == "upgraded"
    assert datetime.fromisoformat(history[0]["at"]).utcoffset() is not None  # in the file's timezone


def test_budget_events_are_judged_against_the_limit_in_force(guarded: Telemetry, client: openai.OpenAI) -> None:
    seen: list[tuple[str, str, float]] = []
    unsubscribe = aimon_otel.on_budget_event(lambda e: seen.append((e.kind, e.budget, e.limit)))
    try:
        aimon_otel.set_limit("everything", limit_usd="0.00005", reason="test")  # no key: no for_each
        call(client, "initech")
        call(client, "initech")  # crosses $0.00005: reached against the per-key limit, not the file's $100
    finally:
        unsubscribe()
    assert ("reached", "everything", 0.00005) in seen


@time_machine.travel(datetime(2026, 12, 10, 12, 0, tzinfo=BERLIN), tick=False)
def test_a_per_key_limit_wins_until_it_expires_in_the_files_timezone(guarded: Telemetry, client: openai.OpenAI) -> None:
    aimon_otel.set_plan(tenant_id="acme", plan="pro")
    limit = aimon_otel.set_limit(
        "tenant-monthly", key="acme", limit_usd=0.00005, until="2026-12-15", reason="ticket 4711", by="ops@example.com"
    )
    assert limit.until == datetime(2026, 12, 16, 0, 0, tzinfo=BERLIN)  # through the 15th, Berlin time
    _spent, shown, source = status("tenant-monthly")
    assert (shown, source) == (0.00005, "set until 2026-12-16 00:00 CET by ops@example.com")
    assert [call(client) for _ in range(3)] == ["ok", "ok", "refused tenant-monthly"]
    with time_machine.travel(datetime(2026, 12, 15, 23, 59, 59, tzinfo=BERLIN), tick=False):
        assert call(client) == "refused tenant-monthly"
        assert [(item.budget, item.key) for item in aimon_otel.limits("tenant-monthly")] == [("tenant-monthly", "acme")]
    with time_machine.travel(datetime(2026, 12, 16, 0, 0, 1, tzinfo=BERLIN), tick=False):
        assert call(client) == "ok"  # the plan's $0.001 again
        assert status("tenant-monthly")[1:] == (0.001, "plan pro")
        assert aimon_otel.limits("tenant-monthly") == []
    # without until: the end of the current period (the month, in Berlin)
    default = aimon_otel.set_limit("tenant-monthly", key="globex", limit_usd=1)
    assert default.until == datetime(2027, 1, 1, tzinfo=BERLIN)
    assert aimon_otel.clear_limit("tenant-monthly", key="globex") is True
    assert aimon_otel.clear_limit("tenant-monthly", key="globex") is False
    changes = [(h["key"], h["new"]) for h in aimon_otel.budget_history("tenant-monthly")]
    assert changes[0] == ("globex", None) and changes[-1] == ("acme", {"plan": "pro"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda: aimon_otel.set_plan(tenant_id="acme", plan="gold"), "unknown plan 'gold' for tenant_id"),
        (lambda: aimon_otel.set_plan(user_id="u1", plan="pro"), "no budget counts for_each: user_id with plans"),
        (lambda: aimon_otel.set_plan(tenant_id="a", feature="b", plan="pro"), "exactly one field"),
        (lambda: aimon_otel.set_limit("nope", key="acme", limit_usd=1), "no budget named 'nope'"),
        (lambda: aimon_otel.set_limit("tenant-monthly", limit_usd=1), "give the key"),
        (lambda: aimon_otel.set_limit("everything", key="acme", limit_usd=1), "give no key"),
        (lambda: aimon_otel.set_limit("tenant-monthly", key="acme", limit_usd=-1), "0 or more"),
        (lambda: aimon_otel.set_limit("tenant-monthly", key="acme", limit_usd=float("nan")), "finite"),
        (lambda: aimon_otel.set_limit("tenant-monthly", key="acme", limit_tokens=5), "give limit_usd"),
        (lambda: aimon_otel.set_limit("tokens-monthly", key="acme", limit_usd=5), "give limit_tokens"),
        (lambda: aimon_otel.set_limit("tenant-monthly", key="acme", limit_usd=1, until="2020-01-01"), "future"),
        (lambda: aimon_otel.set_limit("tenant-monthly", key="acme", limit_usd=1, until="soon"), "not a date"),
    ],
)
def test_bad_changes_are_refused_and_change_nothing(guarded: Telemetry, change: Any, message: str) -> None:
    with pytest.raises(AimonConfigError, match=message):
        change()
    assert aimon_otel.limits() == [] and aimon_otel.budget_history() == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("budgets: [{name: b, limit_usd: 5, period: day, plans: {pro: 50}}]", "give the budget for_each"),
        ("budgets: [{name: b, for_each: tenant_id, limit_usd: 5, period: day, plans: {Pro: 50}}]", "not a plan name"),
        ("budgets: [{name: b, for_each: tenant_id, limit_usd: 5, period: day, plans: {pro: -1}}]", "0 or more"),
        ("budgets: [{name: b, for_each: tenant_id, limit_tokens: 5, period: day, plans: {pro: 1.5}}]", "whole number"),
        ("budgets: [{name: b, for_each: tenant_id, limit_usd: 5, period: day, plans: []}]", "must map plan names"),
    ],
)
def test_bad_plans_in_the_file_name_the_key_and_the_fix(tmp_path: Path, text: str, message: str) -> None:
    from aimon_otel.budgets import load_budgets

    path = tmp_path / "budgets.yaml"
    path.write_text(text)
    with pytest.raises(AimonConfigError, match=message) as raised:
        load_budgets(path)
    assert str(path) in str(raised.value) and "key 'plans'" in str(raised.value)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "budgets", *args], capture_output=True, text=True, timeout=60, check=False)


def test_a_plan_change_from_the_cli_reaches_four_running_processes(
    tmp_path: Path, fake: FakeProvider, budgets_file: str
) -> None:
    """Four app processes on one Redis ledger; acme's four calls spend the free limit, each process's next
    call is refused; the CLI, in another process, moves acme to pro; each process's next call goes
    through, none restarted. Then the limit, the history, and a Redis restart that loses none of it."""
    with RedisServer(tmp_path) as server:
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.plan_worker", fake.openai_base_url, server.url, budgets_file],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        try:

            def ask(worker: subprocess.Popen[str], tenant: str = "acme") -> str:
                assert worker.stdin is not None and worker.stdout is not None
                worker.stdin.write(tenant + "\n")
                worker.stdin.flush()
                return worker.stdout.readline().strip()

            for worker in workers:
                assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
            assert [ask(workers[i]) for i in range(4)] == ["ok"] * 4
            assert [ask(worker) for worker in workers] == ["refused tenant-monthly 0.0001"] * 4

            shared = ("--file", budgets_file, "--ledger", server.url)
            done = cli("set-plan", "--tenant", "acme", "pro", *shared, "--by", "sales", "--reason", "order 42")
            assert done.returncode == 0, done.stderr
            assert [ask(worker) for worker in workers] == ["ok"] * 4

            done = cli("set-limit", "tenant-monthly", "--key", "acme", "--usd", "0.0002", "--until", "2099-12-31",
                       "--reason", "ticket 4711", "--by", "ops@example.com", *shared)  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert ask(workers[0]) == "refused tenant-monthly 0.0002"  # 8 calls in: over the per-key limit

            status = json.loads(
                cli("status", budgets_file, "--ledger", server.url, "--tenant", "acme", "--json").stdout
            )
            monthly = next(s for s in status if s["budget"] == "tenant-monthly")
            assert monthly["limit"] == 0.0002 and monthly["limit_source"].startswith("set until 2100-01-01 00:00")
            server.stop(save=True)
            server.start()
            listed = json.loads(cli("limits", "--json", *shared).stdout)
            assert {(item["kind"], item.get("plan") or item.get("limit")) for item in listed} == {
                ("limit", 0.0002),
                ("plan", "pro"),
            }
            history = json.loads(cli("history", "--budget", "tenant-monthly", "--json", *shared).stdout)
            assert [(h["event"], h["by"], h["reason"]) for h in history] == [
                ("limit_changed", "ops@example.com", "ticket 4711"),
                ("plan_changed", "sales", "order 42"),
            ]
            assert ask(workers[1]) == "refused tenant-monthly 0.0002"  # after the restart: still in force
            done = cli("clear-limit", "tenant-monthly", "--key", "acme", *shared)
            assert done.returncode == 0 and "limit cleared" in done.stdout
            assert ask(workers[2]) == "ok"  # the plan's $0.001 again
        finally:
            for worker in workers:
                worker.communicate(timeout=30)
        assert all(worker.returncode == 0 for worker in workers), [w.stderr for w in workers]


def test_the_cli_write_verbs_need_a_shared_ledger(budgets_file: str) -> None:
    failed = cli("set-plan", "--tenant", "acme", "pro", "--file", budgets_file, "--ledger", "memory")
    assert (
        failed.returncode == 2 and "needs the shared ledger" in failed.stderr and "--ledger redis://" in failed.stderr
    )
    failed = cli("set-plan", "--tenant", "acme", "gold", "--file", budgets_file, "--ledger", "redis://127.0.0.1:9/0")
    assert failed.returncode == 2 and "unknown plan 'gold'" in failed.stderr


def test_plans_limits_and_credits_cost_no_extra_round_trip(tmp_path: Path, budgets_file: str) -> None:
    """With a key on a plan, a per-key limit and a credit balance, a guarded call is still one round trip on the
    app's path (the check: the spend, the plan, the limit and the balance read and the call's hold written in one
    script) and one settle sent by the writer thread: Redis's own command counts say so."""
    import redis as redis_py

    from aimon_otel.budgets import Guard, load_budgets
    from aimon_otel.budgets.credits import Credits
    from aimon_otel.budgets.limits import RunTimeLimits
    from aimon_otel.budgets.redis_ledger import RedisLedger
    from aimon_otel.instrumentation.invocation import Invocation
    from aimon_otel.instrumentation.usage import Usage
    from aimon_otel.pricing import PricingEngine

    path = Path(budgets_file)
    path.write_text(BUDGETS + "  - {name: credits, for_each: tenant_id, credits: true, action: block}\n")
    with RedisServer(tmp_path) as server:
        ledger = RedisLedger.from_url(server.url)
        try:
            guard = Guard(load_budgets(path), ledger)
            RunTimeLimits(guard).set_plan("tenant_id", "acme", "enterprise")
            RunTimeLimits(guard).set_limit("tenant-daily", "acme", limit_usd=1)
            Credits(guard).add("credits", "acme", usd=10, reference="pack")
            usage = Usage(input_tokens=120, output_tokens=30)
            cost = PricingEngine().price("openai", "gpt-4o-mini", usage)
            attribution = {"tenant.id": "acme"}

            def call() -> Invocation:
                invocation = Invocation("chat", "openai", "gpt-4o-mini")
                invocation.usage = usage
                return invocation

            warm = call()
            guard.check(warm, attribution)  # the scripts loaded
            guard.record(warm, cost, attribution)
            assert ledger.flush()
            client = redis_py.Redis.from_url(server.url)
            inside_scripts = {"get", "set", "incrby", "decrby", "expireat", "exists", "hset", "hget", "del"}

            def sent() -> dict[str, int]:
                stats = client.info("commandstats")
                return {
                    name.removeprefix("cmdstat_"): value["calls"]
                    for name, value in stats.items()
                    if name.removeprefix("cmdstat_") not in inside_scripts | {"info", "config|resetstat", "hello"}
                }

            calls = [call() for _ in range(50)]
            client.config_resetstat()
            for invocation in calls:
                assert guard.check(invocation, attribution) is None
            assert sent() == {"evalsha": 50, "mget": 50}  # the checks: one script each (its one MGET inside)
            client.config_resetstat()
            for invocation in calls:
                guard.record(invocation, cost, attribution)
            assert ledger.flush()
            assert sent() == {"evalsha": 50}  # the settles, from the writer thread
            status = {s.budget: s for s in guard.status(tenant_id="acme")}
            assert status["tenant-monthly"].limit_source == "plan enterprise"
            assert status["credits"].balance == pytest.approx(10 - 51 * 0.000036, abs=1e-12)  # holds given back
        finally:
            ledger.close()
