"""The public face of budgets in the app: ``budget_status(...)``, ``on_budget_event(...)``, and the limits
that change while it runs: ``set_plan``, ``set_limit``, ``clear_limit``, ``limits``, ``budget_history``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from aimon_otel.budgets.credits import Credits, TopUp
from aimon_otel.budgets.guard import BudgetEvent, BudgetStatus, Guard
from aimon_otel.budgets.limits import LimitSet, PlanSet, RunTimeLimits
from aimon_otel.errors import AimonConfigError


def budget_status(
    *,
    tenant_id: str | None = None,
    user_id: str | None = None,
    feature: str | None = None,
    agent: str | None = None,
    provider: str | None = None,
    model: str | None = None,
) -> list[BudgetStatus]:
    """Where each budget that applies stands in its current period, read from the ledger the guard uses.

    Fields left out match any budget; a ``for_each`` budget is listed for the value given for its
    field. ``user_id`` is the raw id (hashed here when ``AIMON_USER_ID_HASH`` is set). Empty when
    ``instrument()`` was given no budgets file.
    """
    from aimon_otel.instrumentation.instrumentor import AimonInstrumentor

    pipeline = AimonInstrumentor().pipeline
    guard = pipeline.guard if pipeline is not None else None
    if guard is None or pipeline is None:
        return []
    if user_id is not None and pipeline.hash_user is not None:  # the raw id, as the app knows it
        user_id = pipeline.hash_user(user_id)
        if user_id is None:
            return []
    return guard.status(
        tenant_id=tenant_id, user_id=user_id, feature=feature, agent=agent, provider=provider, model=model
    )


def on_budget_event(listener: Callable[[BudgetEvent], Any]) -> Callable[[], None]:
    """Call ``listener(event)`` on each ``warning``, ``reached`` and ``blocked`` event; returns what unsubscribes.

    Listeners run on the thread that made the call, after it ended (``blocked``: before raising);
    keep them quick. One that raises is logged once and never breaks the call.
    """
    from aimon_otel.instrumentation.instrumentor import AimonInstrumentor

    return AimonInstrumentor().budget_events.subscribe(listener)


def _guard() -> Guard:
    from aimon_otel.instrumentation.instrumentor import AimonInstrumentor

    pipeline = AimonInstrumentor().pipeline
    guard = pipeline.guard if pipeline is not None else None
    if guard is None:
        raise AimonConfigError("no budgets: instrument() was given no budgets file (AIMON_BUDGETS or budgets=...)")
    return guard


def _run_time_limits() -> RunTimeLimits:
    return RunTimeLimits(_guard())


def add_credits(
    budget: str,
    key: str | None = None,
    *,
    usd: float | str | Decimal,
    reference: str,
    reason: str = "",
    by: str | None = None,
) -> TopUp:
    """Add prepaid credits to a ``credits: true`` budget's balance, once per ``reference`` (a payment id).

    The same reference again adds nothing (``added=False``); with another amount or key it raises
    :class:`AimonConfigError` naming the first. Negative amounts are refunds and corrections."""
    return Credits(_guard()).add(budget, key, usd=usd, reference=reference, reason=reason, by=by)


def credit_balance(budget: str, key: str | None = None) -> float:
    """A credit budget's balance in USD (what its block check reads, this process's unwritten calls included)."""
    return Credits(_guard()).balance(budget, key)


def set_plan(
    *,
    plan: str | None,
    tenant_id: str | None = None,
    user_id: str | None = None,
    feature: str | None = None,
    agent: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    by: str | None = None,
    reason: str = "",
) -> None:
    """Put one key on a plan (``plan=None``: off any plan), e.g. ``set_plan(tenant_id="acme", plan="pro")``.

    Applies to every budget counted ``for_each`` that field with ``plans``, in every process sharing the
    ledger, from its next call; the period's spend is kept. ``user_id`` is the raw id (hashed here when
    ``AIMON_USER_ID_HASH`` is set)."""
    given = {
        name: value
        for name, value in (
            ("tenant_id", tenant_id),
            ("user_id", user_id),
            ("feature", feature),
            ("agent", agent),
            ("provider", provider),
            ("model", model),
        )
        if value is not None
    }
    if len(given) != 1:
        raise AimonConfigError(f"set_plan() takes exactly one field and its value, e.g. tenant_id='acme'; got {given}")
    ((field, key),) = given.items()
    if field == "user_id":
        key = _hashed_user(key)
    _run_time_limits().set_plan(field, key, plan, by=by, reason=reason)


def set_limit(
    budget: str,
    key: str | None = None,
    *,
    limit_usd: float | str | Decimal | None = None,
    limit_tokens: int | None = None,
    until: str | date | datetime | None = None,
    reason: str = "",
    by: str | None = None,
) -> LimitSet:
    """One key's own limit in a budget until ``until`` (a date: through that day in the file's timezone;
    default: the end of the current period). It wins over the key's plan and the file."""
    return _run_time_limits().set_limit(
        budget, key, limit_usd=limit_usd, limit_tokens=limit_tokens, until=until, reason=reason, by=by
    )


def clear_limit(budget: str, key: str | None = None, *, by: str | None = None, reason: str = "") -> bool:
    """Drop a key's own limit; False when it had none."""
    return _run_time_limits().clear_limit(budget, key, by=by, reason=reason)


def limits(budget: str | None = None) -> list[LimitSet | PlanSet]:
    """The per-key limits in force (of one budget, or all) and the keys' plans."""
    found = _run_time_limits()
    plans: list[LimitSet | PlanSet] = [] if budget is not None else list(found.plans())
    return [*found.limits(budget), *plans]


def budget_history(budget: str | None = None, key: str | None = None) -> list[dict[str, object]]:
    """Plan and limit changes, newest first: when, who, old and new value, why."""
    return list(_run_time_limits().history(budget, key))


def _hashed_user(user_id: str) -> str:
    from aimon_otel.instrumentation.instrumentor import AimonInstrumentor

    pipeline = AimonInstrumentor().pipeline
    if pipeline is not None and pipeline.hash_user is not None:
        hashed = pipeline.hash_user(user_id)
        if hashed is None:
            raise AimonConfigError(f"user_id {user_id!r} cannot be hashed (empty?)")
        return hashed
    return user_id
