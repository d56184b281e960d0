"""Limits that change while the app runs: a key's plan and per-key limits, kept in the ledger.

The budgets file holds the rules; these are data. Each is an integer slot beside the spend (see
``guard.setting_slots``), read by the guard in the same round trip as the spend, so a change made by
any process or the CLI applies to every process at its next call. Every change is written with an
audit entry (time, who, old and new value, reason) in the same atomic step.

Precedence of a key's limit: its per-key limit (until it expires), else its plan's limit in that
budget, else the file's.
"""

from __future__ import annotations

import getpass
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from aimon_otel.budgets.guard import BudgetEvent, Guard, limit_slot, plan_slot
from aimon_otel.budgets.ledger import Entry, Setting
from aimon_otel.budgets.spec import FIELDS, NANO, Budget, plan_code
from aimon_otel.errors import AimonConfigError


@dataclass(frozen=True)
class LimitSet:
    """A per-key limit in force."""

    budget: str
    key: str
    limit: float
    """USD, or tokens for a ``limit_tokens`` budget."""
    unit: str
    until: datetime
    set_at: datetime
    by: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "limit",
            "budget": self.budget,
            "key": self.key,
            "limit": self.limit,
            "unit": self.unit,
            "until": self.until.isoformat(),
            "set_at": self.set_at.isoformat(),
            "by": self.by,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class PlanSet:
    """A key's plan."""

    field: str
    key: str
    plan: str
    set_at: datetime
    by: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "plan",
            "field": self.field,
            "key": self.key,
            "plan": self.plan,
            "set_at": self.set_at.isoformat(),
            "by": self.by,
            "reason": self.reason,
        }


def default_by() -> str:
    """Who made a change when nobody says: the OS user (the CLI's default too)."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


class RunTimeLimits:
    """Plans and per-key limits of one guard's budgets, in its ledger."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.budgets = guard.budgets
        self.zone: ZoneInfo = guard.budgets.timezone

    # -- plans ------------------------------------------------------------------------------------

    def set_plan(self, field: str, key: str, plan: str | None, by: str | None = None, reason: str = "") -> None:
        """Put ``key`` (a value of ``field``) on ``plan`` (None: none) in every budget counted for_each ``field``."""
        if field not in FIELDS:
            raise AimonConfigError(f"unknown field {field!r}; a plan is set for one of {list(FIELDS)}")
        budgets = [b for b in self.budgets.budgets if b.for_each == field and b.plans]
        if not budgets:
            raise AimonConfigError(
                f"{self.budgets.path}: no budget counts for_each: {field} with plans; add plans: {{pro: 50}} to one"
            )
        _check_key(key, field)
        known = sorted({name for b in budgets for name, _ in b.plans})
        if plan is not None and plan not in known:
            raise AimonConfigError(f"unknown plan {plan!r} for {field}; the budgets file's plans are {known}")
        now = self.guard.clock()
        meta = (
            None if plan is None else _json({"plan": plan, "set_at": now, "by": by or default_by(), "reason": reason})
        )
        entry = {
            "at": now,
            "event": "plan_changed",
            "field": field,
            "key": key,
            "new": None if plan is None else {"plan": plan},
            "by": by,
            "reason": reason,
        }
        settings = [Setting(plan_slot(field, key), None if plan is None else plan_code(plan), None, meta)]
        entries = [Entry(budget.name, 0, _json({**entry, "budget": budget.name})) for budget in budgets]
        self.guard.ledger.change(settings, entries)
        self._announce("plan_changed", [budget.name for budget in budgets], field, key)

    def plans(self) -> list[PlanSet]:
        found = []
        for slot, meta in sorted(self.guard.ledger.metas("set:plan|").items()):
            field, key = slot[len("set:plan|") :].split("|", 1)
            data = json.loads(meta)
            found.append(PlanSet(field, key, data["plan"], self._time(data["set_at"]), data["by"], data["reason"]))
        return found

    # -- per-key limits ---------------------------------------------------------------------------

    def set_limit(
        self,
        budget_name: str,
        key: str | None = None,
        *,
        limit_usd: float | str | Decimal | None = None,
        limit_tokens: int | None = None,
        until: str | date | datetime | None = None,
        reason: str = "",
        by: str | None = None,
    ) -> LimitSet:
        """Give one key of a budget its own limit until ``until`` (default: the end of the current period)."""
        budget = self._budget(budget_name)
        key = self._key(budget, key)
        units = self._units(budget, limit_usd, limit_tokens)
        now = self.guard.clock()
        ends = self._until(budget, until, now)
        by = by or default_by()
        meta = {"limit": str(units), "unit": budget.unit, "until": ends, "set_at": now, "by": by, "reason": reason}
        entry = {
            "at": now,
            "event": "limit_changed",
            "budget": budget.name,
            "key": key,
            "new": {"limit": str(units), "unit": budget.unit, "until": ends},
            "by": by,
            "reason": reason,
        }
        setting = Setting(limit_slot(budget.name, key), units + 1, ends, _json(meta))
        self.guard.ledger.change([setting], [Entry(budget.name, 0, _json(entry))])
        self._announce("limit_changed", [budget.name], budget.for_each, key)
        return self._limit(budget.name, key, meta)

    def clear_limit(self, budget_name: str, key: str | None = None, by: str | None = None, reason: str = "") -> bool:
        """Drop a key's own limit (its plan's or the file's applies again); False when none was set."""
        budget = self._budget(budget_name)
        key = self._key(budget, key)
        entry = {
            "at": self.guard.clock(),
            "event": "limit_changed",
            "budget": budget.name,
            "key": key,
            "new": None,
            "by": by or default_by(),
            "reason": reason,
        }
        setting = Setting(limit_slot(budget.name, key), None, None, None)
        (old,) = self.guard.ledger.change([setting], [Entry(budget.name, 0, _json(entry))])
        if old is not None:
            self._announce("limit_changed", [budget.name], budget.for_each, key)
        return old is not None

    def _announce(self, kind: str, names: list[str], field: str | None, key: str) -> None:
        """Tell ``on_budget_event`` listeners: each budget's spend and the limit now in force, and its source."""
        values: dict[str, str | None] = {field: key} if field else {}
        for status in self.guard.status(False, **values):
            if status.budget in names and status.key == key:
                self.guard.events.send(
                    BudgetEvent(
                        kind=kind,
                        budget=status.budget,
                        key=key,
                        spent=status.spent,
                        limit=status.limit,
                        unit=status.unit,
                        period=status.period,
                        period_start=status.period_start,
                        resets_at=status.resets_at,
                        source=status.limit_source,
                    )
                )

    def limits(self, budget: str | None = None) -> list[LimitSet]:
        if budget is not None:
            self._budget(budget)
        prefix = "set:limit|" + (f"{budget}|" if budget is not None else "")
        found = []
        for slot, meta in sorted(self.guard.ledger.metas(prefix).items()):
            name, key = slot[len("set:limit|") :].split("|", 1)
            found.append(self._limit(name, key, json.loads(meta)))
        return [limit for limit in found if limit.until.timestamp() > self.guard.clock()]

    # -- the audit trail --------------------------------------------------------------------------

    def history(self, budget: str | None = None, key: str | None = None, count: int = 1000) -> list[dict[str, Any]]:
        """Changes to plans and limits, newest first: ``at``, ``event``, ``budget``, ``key``, ``old``, ``new``,
        ``by``, ``reason`` (times in the file's timezone, amounts as the ledger holds them)."""
        names = [self._budget(budget).name] if budget is not None else [b.name for b in self.budgets.budgets]
        entries: list[dict[str, Any]] = []
        for name in names:
            for text in self.guard.ledger.trail(name, count):
                data = json.loads(text)
                if key is None or data.get("key") == key:
                    entries.append(data)
        entries.sort(key=lambda data: -float(data["at"]))
        return [self._readable(data) for data in entries[:count]]

    # -- checks -----------------------------------------------------------------------------------

    def _budget(self, name: str) -> Budget:
        try:
            return self.budgets.named(name)
        except KeyError:
            names = [b.name for b in self.budgets.budgets]
            raise AimonConfigError(f"{self.budgets.path}: no budget named {name!r}; the budgets are {names}") from None

    @staticmethod
    def _key(budget: Budget, key: str | None) -> str:
        return budget_key(budget, key)

    @staticmethod
    def _units(budget: Budget, usd: float | str | Decimal | None, tokens: int | None) -> int:
        if budget.unit == "USD":
            if tokens is not None or usd is None:
                raise AimonConfigError(f"budget {budget.name!r} is in USD: give limit_usd (--usd), not tokens")
            try:
                amount = Decimal(str(usd))
            except InvalidOperation:
                raise AimonConfigError(f"limit_usd {usd!r} is not a number of dollars, e.g. 120 or 2.50") from None
            if not amount.is_finite() or amount < 0 or isinstance(usd, bool):
                raise AimonConfigError(f"limit_usd {usd!r} must be a finite number of dollars, 0 or more")
            if amount * NANO != int(amount * NANO):
                raise AimonConfigError(f"limit_usd {usd!r} has more than 9 decimal places")
            return int(amount * NANO)
        if usd is not None or tokens is None:
            raise AimonConfigError(f"budget {budget.name!r} counts tokens: give limit_tokens (--tokens), not dollars")
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise AimonConfigError(f"limit_tokens {tokens!r} must be a whole number of tokens, 0 or more")
        return tokens

    def _until(self, budget: Budget, until: str | date | datetime | None, now: float) -> float:
        """Epoch seconds. A date is through the end of that day, in the file's timezone; a time without a
        zone is in the file's timezone; default: the end of the current period."""
        if until is None:
            window = budget.period.window(now)
            ends = window.resets_at if budget.period.kind != "rolling" else now + budget.period.seconds
        else:
            moment = _moment(until, self.zone)
            ends = moment.timestamp()
        if not math.isfinite(ends) or ends <= now:
            shown = datetime.fromtimestamp(ends, self.zone).isoformat() if math.isfinite(ends) else repr(until)
            raise AimonConfigError(f"until {shown} is not in the future; give a later date, e.g. the period's end")
        return float(ends)

    def _limit(self, budget: str, key: str, meta: dict[str, Any]) -> LimitSet:
        unit = meta["unit"]
        units = int(meta["limit"])
        return LimitSet(
            budget,
            key,
            units / NANO if unit == "USD" else float(units),
            unit,
            self._time(meta["until"]),
            self._time(meta["set_at"]),
            meta["by"],
            meta["reason"],
        )

    def _readable(self, data: dict[str, Any]) -> dict[str, Any]:
        shown = dict(data)
        shown["at"] = self._time(data["at"]).isoformat()
        for side in ("old", "new"):
            value = shown.get(side)
            if isinstance(value, dict):
                value = {k: v for k, v in value.items() if k not in ("set_at", "by", "reason")}
                if "limit" in value:
                    units = int(value["limit"])
                    value["limit"] = units / NANO if value.get("unit") == "USD" else units
                if "until" in value:
                    value["until"] = self._time(value["until"]).isoformat()
                shown[side] = value
        return shown

    def _time(self, epoch: Any) -> datetime:
        return datetime.fromtimestamp(float(epoch), self.zone)


def _moment(until: str | date | datetime, zone: ZoneInfo) -> datetime:
    if isinstance(until, datetime):
        return until if until.tzinfo is not None else until.replace(tzinfo=zone)
    if isinstance(until, date):
        return datetime.combine(until + timedelta(days=1), datetime.min.time(), zone)
    text = str(until).strip()
    try:
        if len(text) == 10:
            return _moment(date.fromisoformat(text), zone)
        return _moment(datetime.fromisoformat(text), zone)
    except ValueError:
        raise AimonConfigError(
            f"until {until!r} is not a date or time; use 2026-12-31 (through that day) or 2026-12-31T18:00"
        ) from None


def budget_key(budget: Budget, key: str | None) -> str:
    """The counter a change is for: ``""`` for a budget without ``for_each``, else the key it must be given."""
    if budget.for_each is None:
        if key:
            raise AimonConfigError(f"budget {budget.name!r} has no for_each: give no key (it has one counter)")
        return ""
    if not key:
        raise AimonConfigError(f"budget {budget.name!r} counts for_each {budget.for_each}: give the key, e.g. acme")
    _check_key(key, budget.for_each)
    return key


def _check_key(key: str, field: str) -> None:
    if not isinstance(key, str) or not key or "|" in key or any(ord(c) < 32 for c in key):
        raise AimonConfigError(
            f"{field} {key!r} is not a key: give a non-empty value without '|' or control characters"
        )


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True)


__all__: Sequence[str] = ("LimitSet", "PlanSet", "RunTimeLimits", "budget_key", "default_by")
