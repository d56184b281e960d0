"""Prepaid credits: a ``credits: true`` budget is a balance that top-ups add to and calls draw down.

A top-up is added once per ``reference`` (a payment id): sent twice, even by two processes at once,
it adds once; the same reference with another amount or key is refused, naming the first. Negative
amounts are refunds and corrections. Every call draws its exact cost (nano-USD, the figure on
``gen_ai.usage.cost``) through the same once-per-call ledger add as period budgets; a ``block``
credit budget refuses calls at or below ``-overdraft_usd`` with :class:`CreditsExhausted`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aimon_otel.budgets.guard import BudgetEvent, Guard, _slot
from aimon_otel.budgets.limits import budget_key, default_by
from aimon_otel.budgets.periods import BALANCE
from aimon_otel.budgets.spec import NANO, Budget
from aimon_otel.errors import AimonConfigError


@dataclass(frozen=True)
class TopUp:
    """What ``add_credits`` did: ``added`` False when the reference had been used (nothing added again)."""

    budget: str
    key: str
    amount_usd: float
    reference: str
    balance_usd: float
    added: bool


def balance_slot(budget: Budget, key: str) -> str:
    return _slot(budget, BALANCE.slots[0], key)


def reference_slot(budget: Budget, reference: str) -> str:
    return f"creditref|{budget.name}|{reference}"


class Credits:
    """The credit budgets of one guard, in its ledger."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    def add(
        self,
        budget_name: str,
        key: str | None = None,
        *,
        usd: float | str | Decimal,
        reference: str,
        reason: str = "",
        by: str | None = None,
    ) -> TopUp:
        budget = self._budget(budget_name)
        key = self._key(budget, key)
        amount = _amount(usd)
        if not isinstance(reference, str) or not reference.strip() or "|" in reference:
            raise AimonConfigError(
                "give each top-up a reference (its payment id, e.g. pay_123; no '|'): it is added once per reference"
            )
        now = self.guard.clock()
        by = by or default_by()
        record = json.dumps({"key": key, "amount": str(amount), "at": now, "by": by}, sort_keys=True)
        entry = {
            "at": now,
            "event": "credits_added",
            "budget": budget.name,
            "key": key,
            "amount": str(amount),
            "reference": reference,
            "by": by,
            "reason": reason,
        }
        first, balance = self.guard.ledger.top_up(
            balance_slot(budget, key),
            amount,
            reference_slot(budget, reference),
            record,
            budget.name,
            json.dumps(entry, sort_keys=True),
        )
        if first is not None:
            earlier = json.loads(first)
            if earlier["key"] != key or int(earlier["amount"]) != amount:
                raise AimonConfigError(
                    f"reference {reference!r} was already used for {_usd(int(earlier['amount']))} to "
                    f"{earlier['key'] or budget.name} at {self._time(earlier['at']).isoformat()} by {earlier['by']}; "
                    "give this top-up its own reference"
                )
            return TopUp(budget.name, key, amount / NANO, reference, balance / NANO, added=False)
        self.guard.events.send(
            BudgetEvent(
                kind="credits_added",
                budget=budget.name,
                key=key,
                spent=0.0,
                limit=-budget.overdraft_units / NANO,
                unit="USD",
                period="credits",
                period_start=self._time(0),
                resets_at=datetime.max.replace(tzinfo=self.guard.zone),
                threshold=None,
                balance=balance / NANO,
            )
        )
        return TopUp(budget.name, key, amount / NANO, reference, balance / NANO, added=True)

    def balance(self, budget_name: str, key: str | None = None) -> float:
        budget = self._budget(budget_name)
        (value,) = self.guard.ledger.read([balance_slot(budget, self._key(budget, key))])
        return value / NANO

    def history(self, budget_name: str | None = None, key: str | None = None) -> list[dict[str, Any]]:
        """Top-ups and refunds, newest first, with the balance after each."""
        names = [self._budget(budget_name).name] if budget_name else [b.name for b in self._credit_budgets()]
        found: list[dict[str, Any]] = []
        for name in names:
            for text in self.guard.ledger.trail(name):
                data = json.loads(text)
                if data.get("event") == "credits_added" and (key is None or data.get("key") == key):
                    found.append(data)
        found.sort(key=lambda data: -float(data["at"]))
        return [
            {
                **data,
                "at": self._time(data["at"]).isoformat(),
                "amount": int(data["amount"]) / NANO,
                "balance": int(data["balance"]) / NANO,
            }
            for data in found
        ]

    def _credit_budgets(self) -> list[Budget]:
        return [budget for budget in self.guard.budgets.budgets if budget.credits]

    def _budget(self, name: str | None) -> Budget:
        names = [budget.name for budget in self._credit_budgets()]
        for budget in self._credit_budgets():
            if budget.name == name:
                return budget
        raise AimonConfigError(
            f"{self.guard.budgets.path}: no credit budget named {name!r}; credit budgets (credits: true) are {names}"
        )

    @staticmethod
    def _key(budget: Budget, key: str | None) -> str:
        return budget_key(budget, key)

    def _time(self, epoch: Any) -> datetime:
        return datetime.fromtimestamp(float(epoch), self.guard.zone)


def _amount(usd: float | str | Decimal) -> int:
    try:
        amount = Decimal(str(usd))
    except InvalidOperation:
        raise AimonConfigError(f"usd {usd!r} is not a number of dollars, e.g. 100 or -2.50 (a refund)") from None
    if isinstance(usd, bool) or not amount.is_finite() or amount == 0:
        raise AimonConfigError(f"usd {usd!r} must be a finite, non-zero number of dollars (negative: a refund)")
    if amount * NANO != int(amount * NANO):
        raise AimonConfigError(f"usd {usd!r} has more than 9 decimal places")
    return int(amount * NANO)


def _usd(units: int) -> str:
    return f"${Decimal(units) / NANO:,.2f}"
