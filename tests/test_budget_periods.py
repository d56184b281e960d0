"""Calendar periods in the budgets file's timezone, rolling windows, with the clock frozen (time-machine)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import openai
import pytest
import time_machine

import aimon_otel
from aimon_otel.budgets.guard import Guard
from aimon_otel.budgets.ledger import MemoryLedger
from aimon_otel.budgets.periods import parse_period
from aimon_otel.budgets.spec import parse_budgets
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.usage import Usage
from aimon_otel.pricing import PricingEngine
from tests.conftest import MESSAGES, make_telemetry

BERLIN = ZoneInfo("Europe/Berlin")
UTC = ZoneInfo("UTC")
CHAT_COST = Decimal("0.000033")


def at(text: str, zone: ZoneInfo = UTC) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def local(epoch: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(epoch, zone).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        ("day", "2026-11-30 23:59", "2026-11-30 00:00", "2026-12-01 00:00"),
        ("month", "2026-11-30 23:59", "2026-11-01 00:00", "2026-12-01 00:00"),
        ("month", "2026-12-01 00:00", "2026-12-01 00:00", "2027-01-01 00:00"),
        ("month", "2026-12-31 12:00", "2026-12-01 00:00", "2027-01-01 00:00"),
        ("year", "2026-06-15 08:00", "2026-01-01 00:00", "2027-01-01 00:00"),
        # ISO weeks start on Monday, across a year's end too (2026-12-31 is a Thursday).
        ("week", "2026-11-29 23:59", "2026-11-23 00:00", "2026-11-30 00:00"),
        ("week", "2026-11-30 00:00", "2026-11-30 00:00", "2026-12-07 00:00"),
        ("week", "2026-12-31 10:00", "2026-12-28 00:00", "2027-01-04 00:00"),
    ],
)
def test_calendar_periods_start_at_local_midnight(period: str, now: str, start: str, end: str) -> None:
    window = parse_period(period, BERLIN).window(at(now, BERLIN))
    assert (local(window.start, BERLIN), local(window.resets_at, BERLIN)) == (start, end)


def test_dst_days_are_23_and_25_hours_long() -> None:
    day = parse_period("day", BERLIN)
    spring = day.window(at("2026-03-29 12:00", BERLIN))
    autumn = day.window(at("2026-10-25 12:00", BERLIN))
    assert spring.resets_at - spring.start == 23 * 3600
    assert autumn.resets_at - autumn.start == 25 * 3600
    assert local(spring.start, BERLIN) == "2026-03-29 00:00" and local(autumn.resets_at, BERLIN) == "2026-10-26 00:00"


def test_rolling_window_counts_24_buckets_and_the_current_one() -> None:
    rolling = parse_period({"rolling": "24h"}, UTC)
    window = rolling.window(at("2026-11-27 10:30"))
    assert len(window.slots) == 25 and window.slots[0] == at("2026-11-27 10:00")
    assert window.start == at("2026-11-26 10:00") and window.resets_at == at("2026-11-27 11:00")
    assert parse_period("rolling 7d", UTC).bucket_seconds == 7 * 3600
    assert parse_period({"rolling": "30d"}, UTC).text == "rolling 30d"


@pytest.mark.parametrize("bad", ["monthly", "daily", "rolling 0h", "rolling 400d", "30d", {"rolling": "2w"}, 5, None])
def test_bad_periods_say_what_is_accepted(bad: object) -> None:
    with pytest.raises(ValueError, match=r"rolling|period"):
        parse_period(bad, UTC)


def test_a_berlin_month_starts_at_zero_at_berlin_midnight_not_utc(tmp_path: Path, client: openai.OpenAI) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "timezone: Europe/Berlin\n"
        "budgets:\n  - {name: acme-month, match: {tenant_id: acme}, limit_usd: 100, period: month}\n"
        "  - {name: acme-utc-day, match: {tenant_id: acme}, limit_usd: 100, period: {rolling: 24h}}\n"
    )

    def spent() -> Decimal:
        (status,) = [s for s in aimon_otel.budget_status(tenant_id="acme") if s.budget == "acme-month"]
        return Decimal(str(status.spent))

    telemetry = make_telemetry(budgets=str(budgets))
    try:
        with aimon_otel.attributes(tenant_id="acme"):
            # 2026-11-30 23:30 in Berlin is 22:30 UTC: the last half hour of November there.
            with time_machine.travel(datetime(2026, 11, 30, 23, 30, tzinfo=BERLIN), tick=False):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                assert spent() == 2 * CHAT_COST
            # 23:10 UTC on the 30th: still November in UTC, already December in Berlin.
            with time_machine.travel(datetime(2026, 11, 30, 23, 10, tzinfo=UTC), tick=False):
                assert spent() == 0
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                assert spent() == CHAT_COST
                (status,) = [s for s in aimon_otel.budget_status(tenant_id="acme") if s.budget == "acme-month"]
                assert status.period_start == datetime(2026, 12, 1, tzinfo=BERLIN)
                assert status.resets_at == datetime(2027, 1, 1, tzinfo=BERLIN)
            # The rolling 24h budget still holds all three calls an hour later; a day and two hours later, none.
            with time_machine.travel(datetime(2026, 12, 1, 0, 10, tzinfo=UTC), tick=False):
                (rolling,) = [s for s in aimon_otel.budget_status(tenant_id="acme") if s.budget == "acme-utc-day"]
                assert Decimal(str(rolling.spent)) == 3 * CHAT_COST
            with time_machine.travel(datetime(2026, 12, 1, 0, 10, tzinfo=UTC) + timedelta(hours=26), tick=False):
                (rolling,) = [s for s in aimon_otel.budget_status(tenant_id="acme") if s.budget == "acme-utc-day"]
                assert rolling.spent == 0
    finally:
        telemetry.instrumentor.uninstrument()


class _PastNotFinal(MemoryLedger):
    """The memory ledger read as a shared ledger is: every bucket of a rolling window on every call."""

    past_slots_final = False


def test_a_rolling_window_read_once_per_bucket_decides_as_one_read_in_full() -> None:
    """In memory the guard sums a rolling window's past buckets once per bucket, and keeps each kind of call's
    holds and settle while its windows hold: the same refusals, spend and events as summing all 25 on every
    call, and as a guard that works everything out afresh for every call, over three days of calls at random
    times."""
    import random

    budgets = parse_budgets(
        {
            "timezone": "UTC",
            "budgets": [
                {"name": "day", "limit_usd": 0.01, "period": "rolling 24h", "action": "block", "warn_at": [0.5, 0.9]},
                {"name": "per-user", "for_each": "user_id", "limit_tokens": 9000, "period": "rolling 24h"}
                | {"action": "block"},
            ],
        },
        "test",
    )
    now = [at("2026-11-27 00:00")]
    engine = PricingEngine()
    outcomes = []
    runs = [(MemoryLedger(clock=lambda: now[0]), False), (_PastNotFinal(clock=lambda: now[0]), False)]
    runs.append((MemoryLedger(clock=lambda: now[0]), True))
    for ledger, afresh in runs:
        events: list[tuple[str, str, str, float]] = []
        guard = Guard(budgets, ledger, engine=engine, clock=lambda: now[0])
        guard.events.subscribe(lambda e, kept=events: kept.append((e.kind, e.budget, e.key, e.spent)))
        randomness = random.Random(7)
        now[0] = at("2026-11-27 00:00")
        decisions = []
        for _ in range(600):
            now[0] += randomness.uniform(0, 3 * 86400 / 600)
            invocation = Invocation("chat", "openai", "gpt-4o-mini")
            invocation.usage = Usage(input_tokens=randomness.randint(1, 400), output_tokens=randomness.randint(1, 200))
            attribution = {"user.id": f"u-{randomness.randint(1, 3)}"}
            if afresh:  # no plan, counter, hold or settle kept from the call before
                guard._plans.clear()
                guard._counters.clear()
            refusal = guard.check(invocation, attribution)
            decisions.append(None if refusal is None else (refusal.budget, refusal.key, str(refusal)))
            if refusal is None:
                guard.record(invocation, engine.price("openai", "gpt-4o-mini", invocation.usage), attribution)
        statuses = [(s.budget, s.key, s.spent) for s in guard.status(user_id="u-1")]
        outcomes.append((decisions, events, statuses))
    (decisions, events, statuses), *references = outcomes
    for reference in references:
        assert decisions == reference[0] and events == reference[1] and statuses == reference[2]
    assert sum(decision is not None for decision in decisions) > 50  # the limits were reached, again and again
    assert {kind for kind, *_ in events} == {"warning", "reached", "blocked"}
