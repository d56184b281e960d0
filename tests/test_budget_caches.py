"""What the guard keeps between calls decides nothing: the same refusals, events and spend as reading everything
on every call.

In memory the guard holds each kind of call's limits in force at the ledger's settings version, settles a call
as one change per slot (its amount less what its check held) and skips the event check while every total stays
below its next mark. A shared ledger (``settings_version`` None) has the guard read plans and per-key limits
with the spend and look at every total. These runs compare the two, and a guard that works everything out afresh
for every call, over three days of calls with plans changed, per-key limits set to expire, credits topped up,
and calls that settle minutes after their check (some in the next day or bucket).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aimon_otel.budgets.credits import Credits
from aimon_otel.budgets.guard import BudgetEvent, Guard
from aimon_otel.budgets.ledger import MemoryLedger
from aimon_otel.budgets.limits import RunTimeLimits
from aimon_otel.budgets.spec import parse_budgets
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.usage import Usage
from aimon_otel.pricing import PricingEngine

ENGINE = PricingEngine()
BUDGETS = parse_budgets(
    {
        "timezone": "UTC",
        "budgets": [
            {"name": "tenant-day", "for_each": "tenant_id", "limit_usd": 0.02, "period": "day", "action": "block"}
            | {"warn_at": [0.5, 0.9], "plans": {"pro": 0.04, "free": 0.008}},
            {"name": "user-tokens", "for_each": "user_id", "limit_tokens": 15_000, "period": "day", "action": "block"}
            | {"plans": {"pro": 40_000}},
            {"name": "all-rolling", "limit_usd": 0.03, "period": "rolling 24h", "warn_at": [0.5, 0.8]},
            {"name": "acme-credits", "match": {"tenant_id": "acme"}, "for_each": "tenant_id", "credits": True}
            | {"warn_below_usd": [0.001, 0.0004], "overdraft_usd": 0.0001, "action": "block"},
        ],
    },
    "test",
)


class _ReadsSettingsEveryCall(MemoryLedger):
    """The memory ledger read as a shared ledger is: plans and per-key limits read with the spend on every call,
    every total looked at after every add."""

    @property  # type: ignore[override]
    def settings_version(self) -> int | None:
        return None

    @settings_version.setter
    def settings_version(self, value: int) -> None:
        pass


def _run(ledger: MemoryLedger, afresh: bool) -> tuple[list[Any], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    now = [datetime(2026, 11, 27, tzinfo=UTC).timestamp()]
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731
    ledger._clock = clock
    guard = Guard(BUDGETS, ledger, engine=ENGINE, clock=clock)
    events: list[tuple[Any, ...]] = []

    def kept(event: BudgetEvent) -> None:
        events.append((event.kind, event.budget, event.key, event.spent, event.limit, event.threshold, event.balance))

    guard.events.subscribe(kept)
    limits, credits = RunTimeLimits(guard), Credits(guard)
    credits.add("acme-credits", "acme", usd="0.005", reference="first", by="test")
    randomness = random.Random(23)
    decisions: list[Any] = []
    for step in range(900):
        now[0] += randomness.uniform(0, 3 * 86400 / 900)
        roll = randomness.random()
        if roll < 0.05:
            field, key, plans = randomness.choice(
                [
                    ("tenant_id", "acme", ["pro", "free"]),
                    ("tenant_id", "globex", ["pro", "free"]),
                    ("user_id", "u-1", ["pro"]),
                ]
            )
            limits.set_plan(field, key, randomness.choice([*plans, None]), by="test")
            continue
        if roll < 0.08:
            tenant = randomness.choice(["acme", "globex"])
            until = datetime.fromtimestamp(now[0] + randomness.uniform(600, 8 * 3600), UTC)
            limits.set_limit("tenant-day", tenant, limit_usd=randomness.choice(["0.004", "0.04"]), until=until)
            continue
        if roll < 0.10:
            credits.add("acme-credits", "acme", usd="0.001", reference=f"top-up-{step}", by="test")
            continue
        model = "gpt-4o-mini" if randomness.random() < 0.95 else "a-model-nobody-prices"
        call = Invocation("chat", "openai", model)
        if randomness.random() < 0.3:
            call.request_attributes["gen_ai.request.max_tokens"] = randomness.randint(50, 600)
        attribution = {"tenant.id": randomness.choice(["acme", "globex"]), "user.id": f"u-{randomness.randint(1, 3)}"}
        if afresh:  # nothing kept from the call before
            guard._plans.clear()
            guard._counters.clear()
        refusal = guard.check(call, attribution)
        decisions.append(None if refusal is None else str(refusal))
        if refusal is not None:
            continue
        now[0] += randomness.uniform(0, 900)  # the LLM call: up to a quarter of an hour, across midnight at times
        call.usage = Usage(input_tokens=randomness.randint(1, 600), output_tokens=randomness.randint(1, 200))
        if afresh:
            guard._plans.clear()
            guard._counters.clear()
        guard.record(call, ENGINE.price("openai", model, call.usage), attribution)
    statuses = [
        (s.budget, s.key, s.spent, s.limit, s.balance, s.limit_source)
        for values in ({"tenant_id": "acme", "user_id": "u-1"}, {"tenant_id": "globex", "user_id": "u-2"})
        for s in guard.status(**values)
    ]
    return decisions, events, statuses


def test_what_the_guard_keeps_decides_as_reading_everything_every_call() -> None:
    kept = _run(MemoryLedger(), afresh=False)
    every_call = _run(_ReadsSettingsEveryCall(), afresh=False)
    afresh = _run(MemoryLedger(), afresh=True)
    assert kept[0] == every_call[0] == afresh[0]
    assert kept[1] == every_call[1] == afresh[1]
    assert kept[2] == every_call[2] == afresh[2]
    decisions, events, _ = kept
    refused = [decision for decision in decisions if decision is not None]
    kinds = {kind for kind, *_ in events}
    assert (
        len(refused) > 40 and any("credits" in text for text in refused) and any("tokens" in text for text in refused)
    )
    assert {"warning", "reached", "blocked", "credits_low", "credits_exhausted", "credits_added"} <= kinds
    assert {"plan_changed", "limit_changed"} & kinds  # the run changed limits while calls were made


def _guard(now: list[float]) -> tuple[Guard, list[BudgetEvent]]:
    ledger = MemoryLedger(clock=lambda: now[0])
    guard = Guard(BUDGETS, ledger, engine=ENGINE, clock=lambda: now[0])
    events: list[BudgetEvent] = []
    guard.events.subscribe(events.append)
    RunTimeLimits(guard).set_plan("user_id", "u-9", "pro", by="test")
    return guard, events


def _call(guard: Guard, tenant: str, input_tokens: int = 1000, output_tokens: int = 0) -> str | None:
    """A gpt-4o-mini call by u-9 (on pro: 40,000 tokens a day): 1,000 input tokens cost $0.00015."""
    call = Invocation("chat", "openai", "gpt-4o-mini")
    attribution = {"tenant.id": tenant, "user.id": "u-9"}
    refusal = guard.check(call, attribution)
    if refusal is not None:
        return str(refusal)
    call.usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    guard.record(call, ENGINE.price("openai", "gpt-4o-mini", call.usage), attribution)
    return None


def test_events_follow_a_plan_changed_between_two_calls_of_one_kind() -> None:
    """globex on free ($0.008 a day) spends $0.0045, past free's first mark ($0.004); moved to pro ($0.04), its
    next calls, to $0.0105, cross free's limit and second mark but none of pro's: no event. Back on free, the
    next call is refused. A settle kept from before the change would judge against free's limit."""
    now = [datetime(2026, 11, 27, 9, tzinfo=UTC).timestamp()]
    guard, events = _guard(now)
    limits = RunTimeLimits(guard)
    limits.set_plan("tenant_id", "globex", "free", by="test")
    for _ in range(3):
        assert _call(guard, "globex", input_tokens=0, output_tokens=2500) is None  # $0.0015 each
    assert [(e.kind, e.threshold, e.limit) for e in events if e.budget == "tenant-day"] == [
        ("plan_changed", None, 0.008),
        ("warning", 0.5, 0.008),
    ]
    del events[:]
    limits.set_plan("tenant_id", "globex", "pro", by="test")
    for _ in range(4):
        assert _call(guard, "globex", input_tokens=0, output_tokens=2500) is None
    assert [(e.kind, e.limit) for e in events if e.budget == "tenant-day"] == [("plan_changed", 0.04)]
    limits.set_plan("tenant_id", "globex", "free", by="test")
    refusal = _call(guard, "globex")
    assert refusal is not None and "$0.0105 of $0.008" in refusal


def test_a_per_key_limit_stops_applying_at_its_until_with_nothing_else_happening() -> None:
    """acme's own limit of $0.0001 refuses its calls until 10:00; at 10:00:01 the file's $0.02 applies though no
    call settled and nothing touched the ledger meanwhile (the checks kept from before 10:00 end there)."""
    now = [datetime(2026, 11, 27, 9, tzinfo=UTC).timestamp()]
    guard, _ = _guard(now)
    Credits(guard).add("acme-credits", "acme", usd=1, reference="pack", by="test")
    assert _call(guard, "acme") is None
    RunTimeLimits(guard).set_limit(
        "tenant-day", "acme", limit_usd="0.0001", until=datetime(2026, 11, 27, 10, tzinfo=UTC)
    )
    now[0] += 60
    for _ in range(3):
        refusal = _call(guard, "acme")
        assert refusal is not None and "'tenant-day' for acme is spent: $0.00015 of $0.0001" in refusal
        now[0] += 600
    now[0] = datetime(2026, 11, 27, 10, 0, 1, tzinfo=UTC).timestamp()
    assert _call(guard, "acme") is None
