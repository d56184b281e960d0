"""Budgets: the budgets file, calendar periods, the guard, events and the ledgers.

``spec`` reads the file; ``periods`` counts calendar periods in its timezone; ``guard`` refuses
and counts calls; ``ledger`` and ``redis_ledger`` keep the spend; ``rules`` writes the
Prometheus rules and Alertmanager routes from the same file.
"""

from aimon_otel.budgets.guard import BudgetEvent, BudgetEvents, BudgetExceeded, BudgetStatus, Guard
from aimon_otel.budgets.spec import Budget, BudgetsFile, load_budgets

__all__ = [
    "Budget",
    "BudgetEvent",
    "BudgetEvents",
    "BudgetExceeded",
    "BudgetStatus",
    "BudgetsFile",
    "Guard",
    "load_budgets",
]
