"""The guard's view of each budget as gauges: ``aimon.budget.spent``, ``.limit`` and ``.resets_at``.

Prometheus alerts and the Grafana budget dashboard read these, so they see exactly what the guard
sees: calendar periods in the file's timezone, one series per budget and ``for_each`` key this
process has counted in the current period. With a shared ledger every process exports the same
values; take ``max by (aimon_budget_name, aimon_budget_key)``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from opentelemetry.metrics import Observation

from aimon_otel import semconv
from aimon_otel.budgets.guard import BudgetStatus, Guard
from aimon_otel.faults import report_fault

_FRESH_SECONDS = 1.0


class BudgetGauges:
    """One ledger read serves the three gauges of one collection."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self._read_at = -_FRESH_SECONDS
        self._statuses: list[BudgetStatus] = []

    def _current(self) -> list[BudgetStatus]:
        now = time.monotonic()
        if now - self._read_at >= _FRESH_SECONDS:
            try:
                self._statuses = self.guard.observed()
            except Exception as fault:
                report_fault("budget gauges", fault)
                self._statuses = []
            self._read_at = now
        return self._statuses

    def _periods(self) -> list[BudgetStatus]:
        return [status for status in self._current() if status.balance is None]

    def spent(self) -> Iterable[Observation]:
        return [Observation(status.spent, _attributes(status)) for status in self._periods()]

    def limit(self) -> Iterable[Observation]:
        """The limit in force, with where it comes from (``file``, ``plan <name>``, ``set``: a per-key limit)."""
        return [
            Observation(status.limit, {**_attributes(status), semconv.BUDGET_LIMIT_SOURCE: status.limit_source})
            for status in self._periods()
        ]

    def resets_at(self) -> Iterable[Observation]:
        return [Observation(status.resets_at.timestamp(), _attributes(status)) for status in self._periods()]

    def balance(self) -> Iterable[Observation]:
        """Credit budgets: the balance per key (``aimon.budget.balance``, USD)."""
        return [
            Observation(status.balance, {semconv.BUDGET_NAME: status.budget, semconv.BUDGET_KEY: status.key})
            for status in self._current()
            if status.balance is not None
        ]


def _attributes(status: BudgetStatus) -> dict[str, str]:
    return {
        semconv.BUDGET_NAME: status.budget,
        semconv.BUDGET_KEY: status.key,
        semconv.BUDGET_PERIOD: status.period,
        semconv.BUDGET_UNIT: status.unit,
    }
