"""Build the guard ``instrument()`` asks for: the budgets file, the ledger it names, the events."""

from __future__ import annotations

from aimon_otel.budgets.guard import BudgetEvents, Guard
from aimon_otel.budgets.ledger import Ledger, MemoryLedger
from aimon_otel.budgets.spec import load_budgets
from aimon_otel.config import Settings
from aimon_otel.pricing import PricingEngine


def open_ledger(url: str, fail: str = "open") -> Ledger:
    """``memory`` or a Redis URL (``AIMON_BUDGET_LEDGER``)."""
    if url == "memory":
        return MemoryLedger()
    from aimon_otel.budgets.redis_ledger import RedisLedger  # redis-py only when asked for

    return RedisLedger.from_url(url, fail_closed=fail == "closed")


def open_guard(settings: Settings, engine: PricingEngine, events: BudgetEvents) -> Guard | None:
    """The guard for ``settings.budgets``; :class:`~aimon_otel.config.AimonConfigError` for a bad file."""
    if not settings.budgets:
        return None
    budgets = load_budgets(settings.budgets)
    return Guard(budgets, open_ledger(settings.budget_ledger, settings.budget_fail), events, engine)
