"""The shared ledger on a real redis-server (Debian's), started per test on a free port, stopped by its PID.

Costs as in test_budget_guard.py: a gpt-4o-mini chat call against the fake costs $0.000033 (33,000 nano-USD).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
import redis

import aimon_otel
from aimon_otel import BudgetExceeded
from aimon_otel.budgets.guard import BudgetLedgerUnavailable
from aimon_otel.budgets.ledger import Increment, Settlement
from aimon_otel.budgets.redis_ledger import PREFIX, RETRY_SECONDS, RedisLedger
from aimon_otel.cli import main as cli
from aimon_otel.testing import FakeProvider
from tests.conftest import API_KEY, MESSAGES, Telemetry, make_telemetry
from tests.tools import RedisServer, run_budget_workers

CHAT_NANO = 33_000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path) as started:
        yield started


def ledger_total(server: RedisServer, pattern: str = "*") -> int:
    client = redis.Redis.from_url(server.url)
    try:
        keys = [
            key
            for key in client.scan_iter(match=PREFIX + pattern)
            if not key.startswith(tuple((PREFIX + kind).encode() for kind in ("call:", "hold:", "est|")))
        ]
        return sum(int(value) for value in client.mget(keys)) if keys else 0
    finally:
        client.close()


def budgets(tmp_path: Path, text: str) -> str:
    path = tmp_path / "budgets.yaml"
    path.write_text(text)
    return str(path)


def chat(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def test_spend_lands_in_redis_exactly_with_a_ttl_and_status_reads_it(
    tmp_path: Path, server: RedisServer, client: openai.OpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    file = budgets(
        tmp_path,
        "timezone: Europe/Berlin\nbudgets:\n"
        "  - {name: acme-month, match: {tenant_id: acme}, limit_usd: 1, period: month}\n"
        "  - {name: per-user, for_each: user_id, limit_usd: 0.0001, period: day, action: block}\n",
    )
    telemetry = make_telemetry(budgets=file, budget_ledger=server.url)
    try:
        with aimon_otel.attributes(tenant_id="acme", user_id="o'brien"):
            for _ in range(4):  # $0.000099 of $0.0001 after three; the fourth goes and crosses the limit
                chat(client)
            with pytest.raises(BudgetExceeded):
                chat(client)
        with aimon_otel.attributes(tenant_id="acme", user_id="müller"):
            chat(client)
    finally:
        telemetry.instrumentor.uninstrument()
    assert ledger_total(server, "acme-month|*") == 5 * CHAT_NANO
    assert ledger_total(server, "per-user|*") == 5 * CHAT_NANO
    client_ = redis.Redis.from_url(server.url)
    (key,) = list(client_.scan_iter(match=PREFIX + "acme-month|*"))
    ttl = client_.ttl(key)
    client_.close()
    assert 86400 < ttl <= 33 * 86400  # past the end of the month, plus a day

    assert cli(["budgets", "status", file, "--ledger", server.url, "--json"]) == 0
    rows = {(row["budget"], row["key"]): row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == {("acme-month", ""), ("per-user", "o'brien"), ("per-user", "müller")}
    assert Decimal(str(rows["acme-month", ""]["spent"])) == Decimal("0.000165")
    assert rows["per-user", "o'brien"]["state"] == "over" and rows["per-user", "müller"]["state"] == "ok"
    assert cli(["budgets", "status", file, "--ledger", server.url, "--user", "müller"]) == 0
    table = capsys.readouterr().out
    assert "per-user" in table and "müller" in table and "o'brien" not in table and "$0.000033" in table


def test_a_retried_add_counts_once(server: RedisServer) -> None:
    ledger = RedisLedger.from_url(server.url)
    slot = "b|0|k"
    settlement = Settlement.of([Increment(slot, 7, time.time() + 3600)], [slot])
    totals: list[list[int]] = []
    ledger.add("call-1", settlement, [7], totals.append)
    ledger.add("call-1", settlement, [7], totals.append)  # the same call again (a retry after a timeout)
    ledger.add("call-2", settlement, [7], totals.append)
    assert ledger.flush()
    assert totals == [[7], [7], [14]]
    assert ledger.read([slot, "b|0|other"]) == [14, 0]
    ledger.close()


def test_eight_processes_of_64_threads_stop_at_the_limit(tmp_path: Path, server: RedisServer) -> None:
    """Every call that ran is in the ledger to the nano-dollar; once the ledger shows the limit reached no
    call is admitted: the only calls past it are those already in flight, at most one per thread."""
    processes, threads, limit_calls = 8, 64, 1000
    limit_usd = Decimal(limit_calls * CHAT_NANO) / 10**9
    file = budgets(
        tmp_path,
        f"budgets:\n  - {{name: shared, match: {{tenant_id: acme}}, limit_usd: {limit_usd}, "
        "period: day, action: block}\n",
    )
    with FakeProvider() as fake:
        results = run_budget_workers(fake.openai_base_url, server.url, file, processes, threads)
        requests = len(fake.requests)
    assert [r["errors"] for r in results] == [[]] * processes
    completed = sum(r["completed"] for r in results)
    assert completed == requests  # every call that was admitted reached the provider, and only those
    assert ledger_total(server) == completed * CHAT_NANO  # exact
    assert sum(r["refused"] for r in results) == processes * threads  # every thread was stopped by the budget
    assert limit_calls <= completed < limit_calls + processes * threads


def test_redis_away_and_back_loses_nothing_in_fail_open_mode(
    tmp_path: Path, server: RedisServer, client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    file = budgets(
        tmp_path, "budgets:\n  - {name: acme, match: {tenant_id: acme}, limit_usd: 1, period: day, action: block}\n"
    )
    telemetry = make_telemetry(budgets=file, budget_ledger=server.url)
    try:
        ledger = telemetry_ledger(telemetry)
        with aimon_otel.attributes(tenant_id="acme"):
            chat(client)
            assert ledger.flush()  # Redis's own durability is not what this tests: the first call is saved
            server.stop(save=True)
            for _ in range(4):  # Redis is away: calls go through, their spend is kept here
                chat(client)
            assert ledger.pending == 4
            server.start()  # on the same port and its saved data
            time.sleep(RETRY_SECONDS + 0.1)
            chat(client)
            assert ledger.flush()  # the writer sends the four kept calls, then this one
            assert ledger.pending == 0
        assert ledger_total(server) == 6 * CHAT_NANO
        (status,) = aimon_otel.budget_status(tenant_id="acme")
        assert Decimal(str(status.spent)) == 6 * Decimal("0.000033")
    finally:
        telemetry.instrumentor.uninstrument()
    warnings = [r.getMessage() for r in caplog.records if "budget ledger" in r.getMessage()]
    assert len([w for w in warnings if "does not answer" in w]) == 1  # once a minute, not once a call
    assert any("answers again" in w for w in warnings)


def test_fail_closed_refuses_block_budgets_while_redis_is_away(
    tmp_path: Path, server: RedisServer, fake: FakeProvider
) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)
    file = budgets(
        tmp_path,
        "budgets:\n  - {name: acme, match: {tenant_id: acme}, limit_usd: 1, period: day, action: block}\n"
        "  - {name: watch, limit_usd: 1, period: day}\n",
    )
    telemetry = make_telemetry(budgets=file, budget_ledger=server.url, budget_fail="closed")
    try:
        server.stop()
        sent = len(fake.requests)
        with aimon_otel.attributes(tenant_id="acme"), pytest.raises(BudgetLedgerUnavailable) as refused:
            chat(client)
        assert len(fake.requests) == sent
        assert "cannot be checked" in str(refused.value) and isinstance(refused.value, BudgetExceeded)
        chat(client)  # no tenant: no block budget covers it, so it goes (and its spend is kept)
        assert len(fake.requests) == sent + 1
        assert telemetry_ledger(telemetry).pending == 1
        assert not telemetry_ledger(telemetry).flush(timeout=0.5)  # still away: kept, not lost
    finally:
        telemetry.instrumentor.uninstrument()


def telemetry_ledger(telemetry: Telemetry) -> RedisLedger:
    pipeline = telemetry.instrumentor.pipeline
    assert pipeline is not None and pipeline.guard is not None
    ledger = pipeline.guard.ledger
    assert isinstance(ledger, RedisLedger)
    return ledger
