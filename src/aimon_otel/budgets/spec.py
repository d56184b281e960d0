"""The budgets file: the one source of truth for the guard, ``budgets status``, the rules and the routes.

    timezone: Europe/Berlin
    budgets:
      - name: acme-monthly
        match: {tenant_id: acme}
        limit_usd: 500
        period: month
        warn_at: [0.5, 0.8]
        action: block
        notify: [finance]

Everything is checked when the file is loaded; an error names the file, the budget, the key and
the fix. Nothing else reads the YAML.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import re
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from aimon_otel.budgets.periods import Period, credits_period, parse_period
from aimon_otel.errors import AimonConfigError
from aimon_otel.instrumentation.providers.detect import KNOWN_PROVIDERS

FIELDS = ("tenant_id", "user_id", "feature", "agent", "provider", "model")
"""What a budget can match on and count ``for_each`` of."""
ACTIONS = ("alert", "warn", "block")
NANO = 10**9
"""Ledger amounts are integer nano-USD: an embedding call can cost less than a micro-dollar."""
_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
_BUDGET_KEYS = {
    "name", "match", "for_each", "limit_usd", "limit_tokens", "period", "warn_at", "action", "notify", "reserve",
    "plans", "credits", "overdraft_usd", "warn_below_usd",
}  # fmt: skip
_PLAN = re.compile(r"^[a-z0-9_-]{1,64}$")
_TOP_KEYS = {"timezone", "budgets"}
_OLD_FORMAT_KEYS = {"tenant", "amount_usd"}


@dataclass(frozen=True, eq=False)
class Budget:
    """One budget as the file states it, its patterns compiled."""

    name: str
    period: Period
    limit_usd: Decimal | None = None
    limit_tokens: int | None = None
    match: tuple[tuple[str, str], ...] = ()
    for_each: str | None = None
    warn_at: tuple[float, ...] = (0.8,)
    action: str = "alert"
    notify: tuple[str, ...] = ()
    reserve: bool = False
    plans: tuple[tuple[str, int], ...] = ()
    """Limit per plan, in ledger units (nano-USD or tokens): the limit of a key whose plan is listed."""
    credits: bool = False
    """A prepaid balance (nano-USD): top-ups add, calls draw their cost; no period, no reset."""
    overdraft_units: int = 0
    """How far below zero a credit balance may go (nano-USD); a block budget refuses at or below ``-overdraft``."""
    warn_below: tuple[int, ...] = ()
    """Balances (nano-USD, descending) under which a ``credits_low`` event is sent and the alert fires."""
    _matchers: tuple[tuple[int, re.Pattern[str] | str], ...] = field(default=(), repr=False)

    @functools.cached_property
    def plan_limits(self) -> dict[int, int]:
        """Limit (ledger units) by plan code, the number the ledger holds for a key's plan."""
        return {plan_code(plan): units for plan, units in self.plans}

    @property
    def unit(self) -> str:
        return "USD" if self.limit_usd is not None or self.credits else "token"

    @functools.cached_property
    def limit_units(self) -> int:
        """The limit in ledger units: nano-USD or tokens."""
        if self.limit_usd is not None:
            return int(self.limit_usd * NANO)
        return int(self.limit_tokens or 0)

    @property
    def asks_for(self) -> tuple[str, ...]:
        """The fields a call must have for this budget to apply (matched or counted ``for_each``)."""
        names = [name for name, _ in self.match]
        if self.for_each and self.for_each not in names:
            names.append(self.for_each)
        return tuple(names)

    def applies_to(self, subject: tuple[str | None, ...]) -> bool:
        """``subject`` holds the call's values in :data:`FIELDS` order (None when absent)."""
        for index, pattern in self._matchers:
            value = subject[index]
            if value is None:
                return False
            if isinstance(pattern, str):
                if value != pattern:
                    return False
            elif pattern.fullmatch(value) is None:
                return False
        return not (self.for_each is not None and subject[FIELDS.index(self.for_each)] is None)

    def matches(self, name: str, value: str) -> bool:
        """Whether ``value`` passes this budget's pattern for field ``name`` (True when it has none)."""
        index = FIELDS.index(name)
        for at, pattern in self._matchers:
            if at == index:
                return value == pattern if isinstance(pattern, str) else pattern.fullmatch(value) is not None
        return True

    def key(self, subject: tuple[str | None, ...]) -> str:
        """Which of the budget's counters a call goes to: the ``for_each`` value, else ``""``."""
        if self.for_each is None:
            return ""
        return subject[FIELDS.index(self.for_each)] or ""


@dataclass(frozen=True)
class BudgetsFile:
    path: str
    timezone: ZoneInfo
    budgets: tuple[Budget, ...]

    def named(self, name: str) -> Budget:
        for budget in self.budgets:
            if budget.name == name:
                return budget
        raise KeyError(name)


def load_budgets(path: str | Path) -> BudgetsFile:
    """Read and check a budgets file; :class:`AimonConfigError` names the file, budget, key and fix."""
    name = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AimonConfigError(f"{name}: cannot read the budgets file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise AimonConfigError(f"{name}: not valid YAML: {exc}") from None
    return parse_budgets(data, name)


def parse_budgets(data: Any, name: str = "<budgets>") -> BudgetsFile:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AimonConfigError(f"{name}: the top level must be a mapping with 'budgets' (and optionally 'timezone')")
    if "default" in data:
        raise AimonConfigError(f"{name}: {_OLD_FORMAT}")
    unknown = sorted(set(map(str, data)) - _TOP_KEYS)
    if unknown:
        raise AimonConfigError(f"{name}: unknown key(s) {unknown}; the top level takes {sorted(_TOP_KEYS)}")
    zone_name = data.get("timezone", "UTC")
    try:
        if not isinstance(zone_name, str) or not zone_name:
            raise ValueError
        zone = ZoneInfo(zone_name)
    except (ValueError, ZoneInfoNotFoundError):
        raise AimonConfigError(
            f"{name}: key 'timezone': {zone_name!r} is not a timezone; use an IANA name such as "
            "UTC, Europe/Berlin or America/New_York"
        ) from None
    entries = data.get("budgets") or []
    if not isinstance(entries, list):
        raise AimonConfigError(f"{name}: 'budgets' must be a list of budgets, each with a name, a limit and a period")
    budgets: list[Budget] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        budget = _budget(entry, name, index, zone)
        if budget.name in seen:
            raise AimonConfigError(
                f"{name}: budgets[{index}]: key 'name': {budget.name!r} is also the name of "
                f"budgets[{seen[budget.name]}]; give each budget its own name"
            )
        seen[budget.name] = index
        budgets.append(budget)
    return BudgetsFile(name, zone, tuple(budgets))


_OLD_FORMAT = (
    "this is the old budgets format (tenant / amount_usd / daily|weekly|monthly, default); convert each entry, "
    "e.g. {tenant: acme, period: monthly, amount_usd: 500} becomes "
    "{name: acme-monthly, match: {tenant_id: acme}, limit_usd: 500, period: month} "
    "(or period: {rolling: 30d} to keep the old rolling window), and 'default' becomes a budget with "
    "for_each: tenant_id; see the README section 'Converting an old budgets file'"
)


def _budget(entry: Any, file: str, index: int, zone: ZoneInfo) -> Budget:
    where = f"{file}: budgets[{index}]"
    if not isinstance(entry, dict):
        raise AimonConfigError(f"{where}: must be a mapping like {{name: acme-monthly, limit_usd: 500, period: month}}")
    if _OLD_FORMAT_KEYS & set(entry):
        raise AimonConfigError(f"{where}: {_OLD_FORMAT}")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise AimonConfigError(
            f"{where}: key 'name': {name!r} is not a budget name; use 1-64 of a-z, 0-9, '_' and '-', e.g. acme-monthly"
        )
    where = f"{file}: budget {name!r} (budgets[{index}])"

    def fail(key: str, problem: str) -> AimonConfigError:
        return AimonConfigError(f"{where}: key '{key}': {problem}")

    unknown = sorted(set(map(str, entry)) - _BUDGET_KEYS)
    if unknown:
        raise AimonConfigError(f"{where}: unknown key(s) {unknown}; a budget takes {sorted(_BUDGET_KEYS)}")
    credits = entry.get("credits", False)
    if not isinstance(credits, bool):
        raise fail("credits", f"{credits!r} must be true (a prepaid balance) or false")
    if credits:
        for key in ("period", "limit_usd", "limit_tokens", "plans", "reserve", "warn_at"):
            if key in entry:
                raise fail(
                    key,
                    "a credits budget is a balance: top-ups add, calls draw down, nothing resets; it takes no "
                    f"{key} (use overdraft_usd and warn_below_usd), or drop credits: true",
                )
        period = credits_period(zone)
        limit_usd, limit_tokens = None, None
    else:
        for key in ("overdraft_usd", "warn_below_usd"):
            if key in entry:
                raise fail(key, "only a credits budget (credits: true) has a balance to overdraw or warn about")
        try:
            period = parse_period(entry.get("period"), zone)
        except ValueError as exc:
            raise fail("period", str(exc)) from None
        limit_usd, limit_tokens = _limits(entry, fail)
    match = _match(entry.get("match"), fail)
    for_each = entry.get("for_each")
    if for_each is not None and for_each not in FIELDS:
        raise fail("for_each", f"{for_each!r} is not a field to count by; use one of {list(FIELDS)}")
    action = entry.get("action", "alert")
    if action not in ACTIONS:
        raise fail("action", f"{action!r} is not an action; use alert (the default), warn (events only) or block")
    warn_at = _warn_at(entry.get("warn_at", [0.8]), fail)
    notify = entry.get("notify", [])
    if isinstance(notify, str):
        notify = [notify]
    if not isinstance(notify, list) or not all(isinstance(r, str) and r.strip() for r in notify):
        raise fail("notify", f"{notify!r} must be a list of Alertmanager receiver names, e.g. [finance]")
    reserve = entry.get("reserve", False)
    if not isinstance(reserve, bool):
        raise fail("reserve", f"{reserve!r} must be true or false")
    if reserve and action != "block":
        raise fail("reserve", "only a budget with action: block refuses calls; set action: block or drop reserve")
    plans = _plans(entry.get("plans"), limit_usd is not None, for_each, fail)
    overdraft = _dollars(entry.get("overdraft_usd", 0), "overdraft_usd", fail)
    warn_below = tuple(
        sorted({_dollars(v, "warn_below_usd", fail) for v in _listed(entry.get("warn_below_usd", []))}, reverse=True)
    )
    matchers = tuple((FIELDS.index(key), _compile(pattern)) for key, pattern in match)
    return Budget(
        name=name,
        period=period,
        limit_usd=limit_usd,
        limit_tokens=limit_tokens,
        match=match,
        for_each=for_each,
        warn_at=warn_at,
        action=action,
        notify=tuple(notify),
        reserve=reserve,
        plans=plans,
        credits=credits,
        overdraft_units=overdraft,
        warn_below=warn_below,
        _matchers=matchers,
    )


def _limits(entry: dict[str, Any], fail: Any) -> tuple[Decimal | None, int | None]:
    has_usd, has_tokens = "limit_usd" in entry, "limit_tokens" in entry
    if has_usd == has_tokens:
        raise fail("limit_usd", "give exactly one of limit_usd (dollars) or limit_tokens (input + output tokens)")
    if has_usd:
        value = entry["limit_usd"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise fail("limit_usd", f"{value!r} must be a finite number of dollars, 0 or more, e.g. 500 or 2.50")
        limit = Decimal(str(value))
        if limit * NANO != int(limit * NANO):
            raise fail("limit_usd", f"{value!r} has more than 9 decimal places")
        return limit, None
    value = entry["limit_tokens"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail("limit_tokens", f"{value!r} must be a whole number of tokens, 0 or more, e.g. 2_000_000")
    return None, value


def _dollars(value: Any, key: str, fail: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise fail(key, f"{value!r} must be a finite number of dollars, 0 or more, e.g. 10 or 2.50")
    amount = Decimal(str(value))
    if amount * NANO != int(amount * NANO):
        raise fail(key, f"{value!r} has more than 9 decimal places")
    return int(amount * NANO)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def plan_code(plan: str) -> int:
    """A plan's number in the ledger (CRC-32 + 1, never 0: 0 is "no plan"); stable across files and processes."""
    return zlib.crc32(plan.encode()) + 1


def _plans(value: Any, usd: bool, for_each: str | None, fail: Any) -> tuple[tuple[str, int], ...]:
    if value is None:
        return ()
    example = "{pro: 50, enterprise: 500}" if usd else "{pro: 5_000_000}"
    if not isinstance(value, dict) or not value:
        raise fail("plans", f"{value!r} must map plan names to limits, e.g. {example}")
    if for_each is None:
        raise fail(
            "plans",
            "a plan belongs to a key (a tenant, a user...): give the budget for_each: tenant_id (or another field)",
        )
    plans: list[tuple[str, int]] = []
    codes: dict[int, str] = {}
    for plan, limit in value.items():
        if not isinstance(plan, str) or not _PLAN.match(plan):
            raise fail("plans", f"{plan!r} is not a plan name; use 1-64 of a-z, 0-9, '_' and '-', e.g. pro")
        if usd:
            if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit) or limit < 0:
                raise fail(
                    "plans",
                    f"{plan}: {limit!r} must be a finite number of dollars, 0 or more (this budget is limit_usd)",
                )
            amount = Decimal(str(limit))
            if amount * NANO != int(amount * NANO):
                raise fail("plans", f"{plan}: {limit!r} has more than 9 decimal places")
            units = int(amount * NANO)
        else:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise fail("plans", f"{plan}: {limit!r} must be a whole number of tokens (this budget is limit_tokens)")
            units = limit
        code = plan_code(plan)
        if code in codes:  # two names with one CRC-32: never seen, but then the ledger could not tell them apart
            raise fail("plans", f"{plan!r} and {codes[code]!r} cannot both be used; rename one")
        codes[code] = plan
        plans.append((plan, units))
    return tuple(plans)


def _match(value: Any, fail: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise fail("match", f"{value!r} must be a mapping such as {{tenant_id: acme, provider: openai}}")
    pairs: list[tuple[str, str]] = []
    for key, pattern in value.items():
        if key not in FIELDS:
            raise fail("match", f"{key!r} is not a field to match; use any of {list(FIELDS)}")
        if isinstance(pattern, int) and not isinstance(pattern, bool):
            pattern = str(pattern)
        problem = _pattern_problem(key, pattern)
        if problem:
            raise fail("match", f"{key}: {pattern!r} {problem}")
        pairs.append((key, pattern))
    return tuple(pairs)


def _pattern_problem(key: str, pattern: Any) -> str | None:
    if not isinstance(pattern, str):
        return "must be a string (quote it), exact or a glob such as 'acme-*'"
    if not pattern or pattern != pattern.strip() or any(ord(c) < 32 for c in pattern):
        return "is empty or has leading/trailing spaces or control characters, so it matches no value"
    if pattern.count("[") != pattern.count("]"):
        return "has an unclosed '[' (globs take *, ? and [abc])"
    if key == "provider" and not fnmatch.filter(sorted(KNOWN_PROVIDERS), pattern):
        return f"matches no provider aimon-otel reports; providers are {sorted(KNOWN_PROVIDERS)}"
    return None


def _compile(pattern: str) -> re.Pattern[str] | str:
    if not any(c in pattern for c in "*?["):
        return pattern
    return re.compile(fnmatch.translate(pattern))


def _warn_at(value: Any, fail: Any) -> tuple[float, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise fail("warn_at", f"{value!r} must be a list of fractions of the limit, e.g. [0.5, 0.8]")
    fractions = []
    for fraction in value:
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise fail("warn_at", f"{fraction!r} must be a fraction above 0 and at most 1, e.g. 0.8 for 80%")
        if fraction < 1:  # 1.0 is always "reached"
            fractions.append(float(fraction))
    return tuple(sorted(set(fractions)))
