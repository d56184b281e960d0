"""The guard: refuse a call before it is sent when a ``block`` budget is spent; count every call after.

Before sending, :meth:`Guard.check` asks the ledger, in one atomic step (one round trip to Redis),
whether any matching ``block`` budget is spent and, when none is, to hold an estimate of the call's
cost in each of them: the request's ``max_tokens`` at the model's output price, or the budget's
running estimate of a call, whichever is larger. Every later check, in any process, counts the
calls in flight at their estimate. After the call, :meth:`Guard.record` (a pipeline sink) settles
it: its exact cost, the figure on ``gen_ai.usage.cost``, is added to every matching budget and the
hold given back, in one ledger write that the call does not wait for; ``warning`` and ``reached``
events go to the listeners when that write crossed a threshold.

A call's cost is known only once it has run, so a call whose estimate fits completes even when its
cost then crosses the limit, and the next one is refused. ``reserve: true`` refuses a call whose
``max_tokens`` at the model's output price would cross the limit instead.
"""

from __future__ import annotations

import itertools
import logging
import math
import operator
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, NamedTuple

from aimon_otel import semconv
from aimon_otel.budgets.ledger import Hold, Ledger, LedgerUnavailableError, Refused, Release, Settlement
from aimon_otel.budgets.periods import Window
from aimon_otel.budgets.spec import FIELDS, NANO, Budget, BudgetsFile, plan_code
from aimon_otel.faults import warn_once
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.usage import Usage
from aimon_otel.pricing import CostResult, PricingEngine

logger = logging.getLogger("aimon_otel")

Subject = tuple[str | None, ...]
"""A call's values in :data:`~aimon_otel.budgets.spec.FIELDS` order."""
_ATTRIBUTION_FIELDS = (semconv.TENANT_ID, semconv.USER_ID, semconv.FEATURE, semconv.AGENT_NAME)
_MATCH_CACHE_SIZE = 4096
_BLOCKED_LOG_SECONDS = 60.0


class BudgetExceeded(Exception):  # noqa: N818 - the name users catch, as the issue and docs spell it
    """A ``block`` budget is spent: the call was refused and no request left the process."""

    def __init__(
        self,
        budget: str,
        key: str,
        spent: int,
        limit: int,
        unit: str,
        period: str,
        period_start: datetime,
        resets_at: datetime,
        *,
        reserved: int = 0,
    ) -> None:
        self.budget = budget
        self.key = key
        self.unit = unit
        self.period = period
        self.period_start = period_start
        self.resets_at = resets_at
        self.spent_usd: float | None = spent / NANO if unit == "USD" else None
        self.spent_tokens: int | None = spent if unit == "token" else None
        self.limit: float | int = limit / NANO if unit == "USD" else limit
        self.reserved = reserved
        super().__init__(self._message(spent, limit, reserved))

    @property
    def retry_after(self) -> int:
        """Whole seconds until the period resets (for an HTTP ``Retry-After``)."""
        return max(1, int(self.resets_at.timestamp() - time.time() + 0.999))

    def _message(self, spent: int, limit: int, reserved: int) -> str:
        whose = f" for {self.key}" if self.key else ""
        amounts = f"{_amount(spent, self.unit)} of {_amount(limit, self.unit)} spent"
        if reserved:
            amounts += f", and this call could cost up to {_amount(reserved, self.unit)} (max_tokens)"
        return (
            f"LLM budget '{self.budget}'{whose} is spent: {amounts} in the {self.period} since "
            f"{_when(self.period_start)}; calls are refused until {_when(self.resets_at)}"
        )


class BudgetLedgerUnavailable(BudgetExceeded):
    """The shared ledger does not answer and ``AIMON_BUDGET_FAIL=closed``: a call a ``block`` budget covers is
    refused because its spend cannot be checked."""

    def _message(self, spent: int, limit: int, reserved: int) -> str:
        whose = f" for {self.key}" if self.key else ""
        return (
            f"LLM budget '{self.budget}'{whose} cannot be checked: the budget ledger does not answer, and "
            "AIMON_BUDGET_FAIL=closed refuses calls until it does"
        )


class CreditsExhausted(BudgetExceeded):
    """A prepaid balance (a ``credits: true`` budget) is used up: the call was refused, nothing was sent.

    Distinct from a spent period budget: HTTP 402 (Payment Required), not 429; nothing resets until
    credits are added. ``balance_usd`` is the balance when the call was refused."""

    def __init__(self, budget: str, key: str, balance: int, floor: int, when: datetime) -> None:
        self.balance_usd = balance / NANO
        self.overdraft_usd = -floor / NANO
        self._floor = floor
        super().__init__(budget, key, -balance, -floor, "USD", "credits", when, when)

    @property
    def retry_after(self) -> int:
        return 0

    def _message(self, spent: int, limit: int, reserved: int) -> str:
        whose = f" for {self.key}" if self.key else ""
        allowed = f" (overdraft allowed: {_amount(-self._floor, 'USD')})" if self._floor else ""
        return (
            f"LLM credits '{self.budget}'{whose} are used up: the balance is {_amount(-spent, 'USD')}{allowed}; "
            "calls are refused until credits are added"
        )


@dataclass(frozen=True)
class BudgetEvent:
    """Told to :func:`aimon_otel.on_budget_event` listeners."""

    kind: str
    """``warning`` (a ``warn_at`` threshold crossed), ``reached`` (the limit), ``blocked`` (a call refused)."""
    budget: str
    key: str
    spent: float
    """USD, or tokens for a ``limit_tokens`` budget."""
    limit: float
    unit: str
    period: str
    period_start: datetime
    resets_at: datetime
    threshold: float | None = None
    """The ``warn_at`` fraction crossed (1.0 for ``reached``); for ``credits_low``, the balance (USD) fallen below."""
    balance: float | None = None
    """A credit budget's balance (USD) after the call or top-up."""
    source: str | None = None
    """``limit_changed`` / ``plan_changed``: where the limit now comes from (``plan pro``, ``set ...``, ``file``)."""


@dataclass(frozen=True)
class BudgetStatus:
    """Where one budget (and key) stands in its current period."""

    budget: str
    key: str
    spent: float
    limit: float
    unit: str
    fraction: float
    state: str
    """``ok``, ``warning`` (past the first ``warn_at``) or ``over`` (at or over the limit)."""
    period: str
    period_start: datetime
    resets_at: datetime
    action: str
    balance: float | None = None
    """A credit budget's balance (USD); its ``limit`` is then the floor (minus the overdraft)."""
    limit_source: str = "file"
    """Where ``limit`` comes from: ``file``, ``plan <name>`` or ``set`` (a per-key limit: ``limits()`` says
    until when, by whom and why)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "key": self.key,
            "spent": self.spent,
            "limit": self.limit,
            "unit": self.unit,
            "fraction": round(self.fraction, 6),
            "state": self.state,
            "period": self.period,
            "period_start": self.period_start.isoformat(),
            "resets_at": self.resets_at.isoformat(),
            "action": self.action,
            "limit_source": self.limit_source,
            **({"balance": self.balance} if self.balance is not None else {}),
        }


class BudgetEvents:
    """The listeners of budget events; a raising listener is logged once and never breaks a call."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[BudgetEvent], Any]] = []
        self._reported: set[int] = set()

    def subscribe(self, listener: Callable[[BudgetEvent], Any]) -> Callable[[], None]:
        self._listeners = [*self._listeners, listener]

        def unsubscribe() -> None:
            self._listeners = [known for known in self._listeners if known is not listener]

        return unsubscribe

    def send(self, event: BudgetEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception as error:
                if id(listener) in self._reported:
                    continue
                self._reported.add(id(listener))
                logger.warning(
                    "aimon-otel: the budget event listener %s raised %s: %s; the call is unaffected "
                    "(logged once per listener)",
                    getattr(listener, "__qualname__", repr(listener)),
                    type(error).__name__,
                    error,
                    exc_info=error,
                )


class Guard:
    """The budgets of one ``instrument()`` over one ledger."""

    def __init__(
        self,
        budgets: BudgetsFile,
        ledger: Ledger,
        events: BudgetEvents | None = None,
        engine: PricingEngine | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.budgets = budgets
        self.ledger = ledger
        self.events = events or BudgetEvents()
        self.engine = engine
        self.clock = clock
        self._plans: dict[Subject, _Plan] = {}
        self._counters: dict[tuple[str, str], _Counter] = {}
        self._blocked_logged: dict[tuple[str, str], float] = {}
        self._keys_seen: dict[tuple[str, str], float] = {}
        self._process = uuid.uuid4().hex[:16]
        self._calls = itertools.count()
        """Call ids for the ledger's once-per-call add: this process's random prefix and a counter."""
        self._lock = threading.Lock()
        self._output_costs: dict[tuple[str | None, str | None, int], int] = {}
        self.zone = budgets.timezone

    # -- which budgets a call counts against ------------------------------------------------------

    def subject(self, invocation: Invocation, attribution: dict[str, str]) -> Subject:
        """A call's values in FIELDS order (``check`` has its own copy of these lines, inlined)."""
        get = attribution.get
        return (
            get(semconv.TENANT_ID) or None,
            get(semconv.USER_ID) or None,
            get(semconv.FEATURE) or None,
            get(semconv.AGENT_NAME) or None,
            invocation.provider or None,
            invocation.request_model or None,
        )

    def matching(self, subject: Subject) -> tuple[Budget, ...]:
        return tuple(counter.budget for counter in self._plan(subject).counters)

    def _plan(self, subject: Subject) -> _Plan:
        """The counters (budget and key) a call with these values counts against, and those that block."""
        plan = self._plans.get(subject)
        if plan is None:
            if len(self._plans) >= _MATCH_CACHE_SIZE:
                self._plans.clear()
                self._counters.clear()
            counters = []
            for budget in self.budgets.budgets:
                if budget.applies_to(subject):
                    key = budget.key(subject)
                    counter = self._counters.get((budget.name, key))
                    if counter is None:
                        counter = _Counter(budget, key, self.ledger.past_slots_final)
                        self._counters[(budget.name, key)] = counter
                    counters.append(counter)
            plan = _Plan(tuple(counters))
            self._plans[subject] = plan
        return plan

    # -- before sending ---------------------------------------------------------------------------

    def check(self, invocation: Invocation, attribution: dict[str, str]) -> BudgetExceeded | None:
        """The refusal for this call, or None to let it go, holding its estimate in every ``block`` budget."""
        get = attribution.get  # self.subject, inlined: this runs on every call
        subject = (
            get(semconv.TENANT_ID) or None,
            get(semconv.USER_ID) or None,
            get(semconv.FEATURE) or None,
            get(semconv.AGENT_NAME) or None,
            invocation.provider or None,
            invocation.request_model or None,
        )
        plan = self._plans.get(subject) or self._plan(subject)
        invocation.budget_plan = (attribution, plan)  # for record: the same call, the same attribution
        blocking = plan.blocking
        if not blocking:
            return None
        now = self.clock()
        version = self.ledger.settings_version
        least_usd = least_tokens = 0
        max_tokens = invocation.request_attributes.get(semconv.REQUEST_MAX_TOKENS)
        if isinstance(max_tokens, int) and max_tokens > 0:
            least_tokens = max_tokens
            least_usd = self._output_cost(invocation, max_tokens)
        prepared = plan.check
        if (
            prepared is None
            or not prepared.start <= now < prepared.until
            or prepared.version != version
            or prepared.least_usd != least_usd
            or prepared.least_tokens != least_tokens
        ):
            prepared = plan.check = self._prepare(plan, now, least_usd, least_tokens)
        holds = prepared.holds
        call_id = invocation.call_id
        if call_id is None:
            call_id = invocation.call_id = f"{self._process}-{next(self._calls)}"
        try:
            invocation.held = Release(call_id, prepared.slots, self.ledger.reserve(call_id, holds))
            return None
        except Refused as refused:
            index, spent, limit = refused.index, refused.spent, refused.limit
        except LedgerUnavailableError:
            counter, window = blocking[0], blocking[0].at(now)[0]
            return BudgetLedgerUnavailable(
                counter.budget.name, counter.key, 0, counter.limit, counter.budget.unit,
                counter.budget.period.text, self._time(window.start), self._time(window.resets_at),
            )  # fmt: skip
        counter, hold = blocking[index], holds[index]
        budget, key = counter.budget, counter.key
        window = counter.at(now)[0]
        if counter.credit:  # ``spent`` is the balance, ``limit`` the floor (minus the overdraft)
            exhausted = CreditsExhausted(budget.name, key, spent, limit, self._time(now))
            self._blocked(budget, key, spent, window, exhausted, limit)
            return exhausted
        refusal = BudgetExceeded(
            budget.name,
            key,
            spent,
            limit,
            budget.unit,
            budget.period.text,
            self._time(window.start),
            self._time(window.resets_at),
            reserved=hold.least if hold.fits and spent < limit else 0,
        )
        self._blocked(budget, key, spent, window, refusal, limit)
        return refusal

    def _prepare(self, plan: _Plan, now: float, least_usd: int, least_tokens: int) -> _Check:
        """The holds of a check against ``plan`` for the windows ``now`` is in and the settings' version (kept while
        they hold): with a versioned ledger, each with the limit in force; else with the slots to read it from."""
        version = self.ledger.settings_version  # before the settings are read: a change meanwhile is seen next call
        limits = self._limits_in_force(plan.blocking) if version is not None else None
        holds: list[Hold] = []
        start, until = -math.inf, math.inf if version is None else self.ledger.settings_until
        for index, counter in enumerate(plan.blocking):
            (window, _, expires_at, spend, _), past = self._current(counter, now)
            holds.append(
                Hold(
                    spend,
                    counter.settings if limits is None else (),
                    past,
                    counter.limit if limits is None else limits[index],
                    counter.plans,
                    counter.credit,
                    least_usd if counter.usd else least_tokens,
                    counter.fits,
                    expires_at,
                    counter.estimate,
                )
            )
            start, until = max(start, window.slots[0]), min(until, window.resets_at)
        slots = tuple(hold.spend[0] for hold in holds)
        return _Check(start, until, version, least_usd, least_tokens, tuple(holds), slots)

    def _limits_in_force(self, counters: tuple[_Counter, ...]) -> list[int]:
        """Each counter's limit in force (a per-key limit, else its key's plan's, else the file's), in one read."""
        values = self.ledger.read([slot for counter in counters for slot in counter.settings])
        limits: list[int] = []
        offset = 0
        for counter in counters:
            limits.append(counter.limit_in(values, offset) if counter.n_settings else counter.limit)
            offset += counter.n_settings
        return limits

    def _current(self, counter: _Counter, now: float) -> tuple[_State, int]:
        """A counter's window for ``now`` with its past spend, its ``for_each`` key noted for the gauges: what a
        check's holds and a settle are both made from (once per window, not per call)."""
        state = counter.at(now)
        window, names, _, spend, _ = state
        past = self._past_spend(counter, window, names) if len(spend) < len(names) else 0
        if counter.seen_from < window.slots[0] and counter.budget.for_each is not None:
            self._seen(counter, window)
        return state, past

    def _past_spend(self, counter: _Counter, window: Window, names: tuple[str, ...]) -> int:
        """A rolling window's spend in its past buckets, read once per bucket (ledgers whose past is final)."""
        start, total = counter.past
        if start == window.slots[0]:
            return total
        total = sum(self.ledger.read(names[1:]))
        counter.past = (window.slots[0], total)  # one assignment: threads see the old pair or the new
        return total

    def _output_cost(self, invocation: Invocation, max_tokens: int) -> int:
        """What ``max_tokens`` of output could cost (nano-USD); 0 when unpriced. Remembered per model and size:
        a service sends the same few ``max_tokens`` to the same few models."""
        key = (invocation.provider, invocation.request_model, max_tokens)
        known = self._output_costs.get(key)
        if known is not None:
            return known
        cost = 0
        if self.engine is not None:
            priced = self.engine.price(invocation.provider, invocation.request_model, Usage(output_tokens=max_tokens))
            cost = _nano(priced.total) if priced.total is not None else 0
        if len(self._output_costs) >= _MATCH_CACHE_SIZE:
            self._output_costs.clear()
        self._output_costs[key] = cost
        return cost

    def _blocked(
        self, budget: Budget, key: str, spent: int, window: Window, refusal: BudgetExceeded, limit: int
    ) -> None:
        now = time.monotonic()
        logged = self._blocked_logged.get((budget.name, key))
        if logged is None or now - logged >= _BLOCKED_LOG_SECONDS:
            if len(self._blocked_logged) >= _MATCH_CACHE_SIZE:
                self._blocked_logged.clear()
            self._blocked_logged[(budget.name, key)] = now
            logger.warning("aimon-otel: call refused: %s (logged once a minute per budget and key)", refusal)
        self._send("blocked", budget, key, spent, window, None, limit)

    # -- after the call ---------------------------------------------------------------------------

    def record(self, invocation: Invocation, cost: CostResult, attribution: dict[str, str]) -> None:
        """Add the call's cost (or tokens) to every matching budget's current period (a pipeline sink)."""
        known = invocation.budget_plan
        plan = (
            known[1]
            if known is not None and known[0] is attribution
            else self._plan(self.subject(invocation, attribution))
        )
        if not plan.counters:
            return
        total = cost.total
        priced = total is not None
        nano = int((total * NANO).to_integral_value(ROUND_HALF_EVEN)) if total is not None else 0  # _nano, inlined
        usage = invocation.usage
        tokens = (
            (usage.input_tokens or 0) + (usage.output_tokens or 0) if usage is not None and not usage.problems else 0
        )
        now = self.clock()
        version = self.ledger.settings_version
        settle = plan.settle
        if settle is None or not settle.start <= now < settle.until or settle.version != version:
            settle = plan.settle = self._settle(plan, now)
        by_kind = (nano if nano > 0 else 0, -nano, tokens if tokens > 0 else 0)  # _USD, _CREDIT, _TOKENS
        amounts = settle.amounts(by_kind)
        counted = any(amounts)
        held = invocation.held
        teach: Sequence[int] = ()
        if held is not None:  # what a call costs here, for the next holds (-1: nothing known to teach)
            cost_taught = abs(nano) if priced else -1
            teach = settle.teach((cost_taught, cost_taught, tokens if tokens > 0 else -1))
        elif not counted:
            return

        def added(totals: list[int]) -> None:
            """Told the totals after the add (at once in memory; from the writer thread with Redis): an event for
            each threshold the add crossed. A row whose limit is known is looked at only past its first mark."""
            offset = 0
            rows = settle.rows
            for (counter, kind, size, width, past, window, limit, first), amount in zip(rows, amounts, strict=False):
                if amount:
                    after = past + (totals[offset] if size == 1 else sum(totals[offset : offset + size]))
                    if width > size:  # the limit in force, read with the spend
                        limit = counter.limit_in(totals, offset + size)
                        self._crossed(counter, kind, after - amount, after, window, limit)
                    elif (after < first) if kind == _CREDIT else (after >= first):
                        self._crossed(counter, kind, after - amount, after, window, limit)
                offset += width

        call_id = invocation.call_id or f"{self._process}-{next(self._calls)}"
        # The settle never waits: the check's hold already counted the call for every other check.
        self.ledger.add(call_id, settle.settlement, amounts, added if counted else None, held, teach)

    def _settle(self, plan: _Plan, now: float) -> _Settle:
        """What settling a call against ``plan`` takes besides its amounts, for the windows ``now`` is in and the
        settings' version: with a versioned ledger each row's limit in force and first mark; else the slots to
        read the limit from, read in the same step as the add."""
        version = self.ledger.settings_version  # before the settings are read, as in _prepare
        limits = self._limits_in_force(plan.counters) if version is not None else None
        rows: list[_Row] = []
        slots: list[str] = []
        expiries: list[float] = []
        totals_of: list[str] = []
        kinds: list[int] = []
        estimates: list[str] = []
        start, until = -math.inf, math.inf if version is None else self.ledger.settings_until
        blocking_first = [*plan.blocking, *(counter for counter in plan.counters if not counter.block)]
        for counter in blocking_first:  # the check's holds' order: the settle gives them back row by row
            index = plan.counters.index(counter)
            (window, names, expires_at, spend, reads), past = self._current(counter, now)
            kind = _TOKENS if not counter.usd else _CREDIT if counter.credit else _USD
            read = reads if limits is None else spend
            limit = counter.limit if limits is None else limits[index]
            rows.append((counter, kind, len(spend), len(read), past, window, limit, counter.first_mark(limit)))
            slots.append(names[0])
            expiries.append(expires_at)
            totals_of += read
            kinds.append(kind)
            if counter.block:
                estimates.append(counter.estimate)
            start, until = max(start, window.slots[0]), min(until, window.resets_at)
        quiet = None
        if limits is not None and len(totals_of) == len(slots):  # each row's total is its slot's: bands apply
            quiet = tuple(
                (math.ceil(first) - past, math.inf) if kind == _CREDIT else (-math.inf, math.ceil(first) - past)
                for _, kind, _, _, past, _, _, first in rows
            )
        blocks = len(estimates)
        settlement = Settlement(
            tuple(slots), tuple(expiries), tuple(totals_of), quiet, tuple(estimates), tuple(slots[:blocks])
        )
        return _Settle(start, until, version, tuple(rows), settlement, _picker(kinds), _picker(kinds[:blocks]))

    def _crossed(self, counter: _Counter, kind: int, before: int, after: int, window: Window, limit: int) -> None:
        if kind == _CREDIT:
            self._credit_crossings(counter.budget, counter.key, before, after, window)
        else:
            self._crossings(counter.budget, counter.key, before, after, window, limit)

    def _crossings(self, budget: Budget, key: str, before: int, after: int, window: Window, limit: int) -> None:
        if limit <= 0:
            return
        for threshold in budget.warn_at:
            mark = limit * threshold
            if before < mark <= after:
                self._send("warning", budget, key, after, window, threshold, limit)
        if before < limit <= after:
            self._send("reached", budget, key, after, window, 1.0, limit)

    def _credit_crossings(self, budget: Budget, key: str, before: int, after: int, window: Window) -> None:
        """A balance that fell below a ``warn_below_usd`` mark, or to the floor (``-overdraft``)."""
        for mark in budget.warn_below:
            if before >= mark > after:
                self._send("credits_low", budget, key, after, window, mark / NANO, -budget.overdraft_units)
        if before > -budget.overdraft_units >= after:
            self._send("credits_exhausted", budget, key, after, window, None, -budget.overdraft_units)

    def _send(
        self,
        kind: str,
        budget: Budget,
        key: str,
        spent: int,
        window: Window,
        threshold: float | None,
        limit: int | None = None,
    ) -> None:
        self.events.send(
            BudgetEvent(
                kind=kind,
                budget=budget.name,
                key=key,
                spent=_in_unit(spent, budget.unit),
                limit=_in_unit(budget.limit_units if limit is None else limit, budget.unit),
                unit=budget.unit,
                period=budget.period.text,
                period_start=self._time(window.start),
                resets_at=self._time(window.resets_at),
                threshold=threshold,
                balance=spent / NANO if budget.credits else None,
            )
        )

    # -- where budgets stand ----------------------------------------------------------------------

    def status(self, every_key: bool = False, **values: str | None) -> list[BudgetStatus]:
        """Each budget that applies to ``values`` (fields not given match anything) and where it stands.

        A ``for_each`` budget needs its field's value, unless ``every_key`` lists every key the
        ledger holds for the current period.
        """
        unknown = sorted(set(values) - set(FIELDS))
        if unknown:
            raise TypeError(f"budget_status() got unknown field(s) {unknown}; fields are {list(FIELDS)}")
        now = self.clock()
        wanted: list[tuple[Budget, str, Window]] = []
        for budget in self.budgets.budgets:
            if not _could_apply(budget, values):
                continue
            window = budget.period.window(now)
            if budget.for_each is None:
                wanted.append((budget, "", window))
            elif values.get(budget.for_each):
                wanted.append((budget, str(values[budget.for_each]), window))
            elif every_key:
                prefix = _slot(budget, window.slots[0], "")
                for slot in sorted(self.ledger.slots(prefix)):
                    wanted.append((budget, slot[len(prefix) :], window))
        found = self._statuses([(budget, key) for budget, key, _ in wanted], [w for _, _, w in wanted])
        if any(status.limit_source == "set" for status in found):  # say until when and by whom
            metas = self.ledger.metas("set:limit|")
            found = [self._described(status, metas) for status in found]
        return found

    def _described(self, status: BudgetStatus, metas: dict[str, str]) -> BudgetStatus:
        import dataclasses
        import json

        meta = metas.get(limit_slot(status.budget, status.key)) if status.limit_source == "set" else None
        if meta is None:
            return status
        data = json.loads(meta)
        until = self._time(float(data["until"])).strftime("%Y-%m-%d %H:%M %Z")
        return dataclasses.replace(status, limit_source=f"set until {until} by {data['by']}")

    def _statuses(self, wanted: list[tuple[Budget, str]], windows: list[Window]) -> list[BudgetStatus]:
        """Each budget and key's spend and effective limit, in one ledger read."""
        slots: list[str] = []
        for (budget, key), window in zip(wanted, windows, strict=True):
            slots += [_slot(budget, start, key) for start in window.slots]
            slots += setting_slots(budget, key)
        values = self.ledger.read(slots)
        found: list[BudgetStatus] = []
        offset = 0
        for (budget, key), window in zip(wanted, windows, strict=True):
            spent = sum(values[offset : offset + len(window.slots)])
            offset += len(window.slots)
            limit, source = effective_limit(budget, values, offset)
            offset += len(setting_slots(budget, key))
            found.append(self._status(budget, key, spent, window, limit, source))
        return found

    def _status(self, budget: Budget, key: str, spent: int, window: Window, limit: int, source: str) -> BudgetStatus:
        if budget.credits:  # ``spent`` is the balance
            low = bool(budget.warn_below) and spent < budget.warn_below[0]
            return BudgetStatus(
                budget=budget.name,
                key=key,
                spent=0.0,
                limit=limit / NANO,
                unit="USD",
                fraction=0.0,
                state="over" if spent <= limit else "low" if low else "ok",
                period="credits",
                period_start=self._time(window.start),
                resets_at=self._time(window.resets_at),
                action=budget.action,
                balance=spent / NANO,
                limit_source=source,
            )
        fraction = spent / limit if limit else (1.0 if spent else 0.0)
        if spent >= limit:
            state = "over"
        elif budget.warn_at and fraction >= budget.warn_at[0]:
            state = "warning"
        else:
            state = "ok"
        return BudgetStatus(
            budget=budget.name,
            key=key,
            spent=_in_unit(spent, budget.unit),
            limit=_in_unit(limit, budget.unit),
            unit=budget.unit,
            fraction=fraction,
            state=state,
            period=budget.period.text,
            period_start=self._time(window.start),
            resets_at=self._time(window.resets_at),
            action=budget.action,
            limit_source=source,
        )

    def observed(self) -> list[BudgetStatus]:
        """Every budget without ``for_each``, and each ``for_each`` key this process counted in the current
        period (keys of a past period are dropped: their series end when the period does)."""
        now = self.clock()
        wanted = [(budget, "") for budget in self.budgets.budgets if budget.for_each is None]
        with self._lock:
            for (name, key), start in list(self._keys_seen.items()):
                budget = self.budgets.named(name)
                if start >= budget.period.window(now).start:
                    wanted.append((budget, key))
                else:
                    del self._keys_seen[(name, key)]
        return self._statuses(wanted, [budget.period.window(now) for budget, _ in wanted])

    def _seen(self, counter: _Counter, window: Window) -> None:
        """Remember a ``for_each`` key counted in this window, for the gauges (the caller skips this when the
        counter was already seen in this period, or rolling bucket)."""
        budget, key = counter.budget, counter.key
        with self._lock:
            if len(self._keys_seen) >= MAX_KEYS_EXPORTED:
                warn_once(
                    ("budget keys", budget.name),
                    f"aimon-otel: more than {MAX_KEYS_EXPORTED} budget keys seen; the aimon.budget.* gauges "
                    "leave out new ones (the guard still counts them)",
                )
                return
            self._keys_seen[(budget.name, key)] = window.slots[0]
            counter.seen_from = window.slots[0]

    def _time(self, epoch: float) -> datetime:
        if epoch == math.inf:  # a balance never resets
            return datetime.max.replace(tzinfo=self.zone)
        return datetime.fromtimestamp(epoch, self.zone)


_State = tuple[Window, tuple[str, ...], float, tuple[str, ...], tuple[str, ...]]

_USD, _CREDIT, _TOKENS = 0, 1, 2
"""What a counter adds per call: the cost, the cost off a balance, the tokens."""

_Row = tuple["_Counter", int, int, int, int, Window, int, float]
"""One counter in a settle: counter, kind, spend slots read, slots read (spend, then settings), past spend,
window, limit in force (a versioned ledger), first mark (past which the add may have crossed a threshold; a
balance: below which)."""


class _Settle(NamedTuple):
    """The fixed part of settling a call against a plan's counters, kept while none of their windows (or rolling
    buckets) moves on: the slots, expiries, kinds and past spend are the same call after call."""

    start: float
    until: float
    version: int | None
    rows: tuple[_Row, ...]
    settlement: Settlement
    """Each row's slot and expiry, and every row's slots read back, in order."""
    amounts: Callable[[tuple[int, int, int]], Sequence[int]]
    """Each row's amount from the call's (cost, balance, tokens) amounts, by the row's kind (in C: this runs on
    every call)."""
    teach: Callable[[tuple[int, int, int]], Sequence[int]]
    """What a guarded call teaches each ``block`` row's running estimate, from (cost, cost, tokens)."""


class _Check(NamedTuple):
    """A check's holds against a plan's ``block`` counters, kept while their windows hold and the request's
    ``max_tokens`` floor is the same."""

    start: float
    until: float
    version: int | None
    least_usd: int
    least_tokens: int
    holds: tuple[Hold, ...]
    slots: tuple[str, ...]
    """Where each hold goes (its budget's current slot), for the settle's release."""


class _Plan:
    """The counters a kind of call (tenant, user, feature, agent, provider, model) counts against, those that
    block, and its settle while the windows hold."""

    __slots__ = ("blocking", "check", "counters", "settle")

    def __init__(self, counters: tuple[_Counter, ...]) -> None:
        self.counters = counters
        self.blocking = tuple(counter for counter in counters if counter.block)
        self.settle: _Settle | None = None
        self.check: _Check | None = None


class _Counter:
    """One budget and key: its current window, the window's ledger slots and their expiry, renewed when
    the window moves on (named once per window: a rolling budget has 25 slots)."""

    __slots__ = (
        "_other_marks", "block", "budget", "credit", "estimate", "fits", "key", "limit", "marks",
        "n_settings", "past", "past_final", "plans", "seen_from", "settings", "state", "usd",
    )  # fmt: skip

    def __init__(self, budget: Budget, key: str, past_final: bool = False) -> None:
        self.budget = budget
        self.key = key
        self.block = budget.action == "block"
        self.usd = budget.unit == "USD"
        self.credit = budget.credits
        self.limit = -budget.overdraft_units if budget.credits else budget.limit_units
        """A credit budget's floor: the balance at or below which calls are refused."""
        self.fits = budget.reserve
        self.plans = budget.plan_limits
        self.estimate = f"est|{budget.name}"
        """The budget's running estimate of a call's cost (or tokens): what a call without ``max_tokens`` holds."""
        self.settings = setting_slots(budget, key)
        """Its per-key limit's slot, then its key's plan's (when the budget has plans): read with its spend."""
        self.n_settings = len(self.settings)
        self.marks = _marks(budget, self.limit)
        """The amounts at which an event is due, ascending: each warn_at, then the limit."""
        self.state: _State | None = None
        """The current window, its slots, their expiry, the slots its spend is read from (the current bucket
        alone when the ledger's past is final), and those plus the settings'."""
        self.past_final = past_final
        self.past: tuple[float, int] = (-math.inf, 0)
        """A rolling window's bucket start and the sum of the buckets before it (``past_final`` ledgers)."""
        self._other_marks: tuple[int, tuple[float, ...]] = (self.limit, self.marks)
        self.seen_from = -math.inf
        """The window (or rolling bucket) start at which the guard last noted this key for the gauges."""

    def limit_in(self, values: list[int], offset: int) -> int:
        """The limit in force from this counter's settings read at ``offset``: a per-key limit (stored + 1), else
        its key's plan's, else the file's."""
        if own := values[offset]:
            return own - 1
        if self.n_settings > 1 and (code := values[offset + 1]):
            return self.plans.get(code, self.limit)
        return self.limit

    def first_mark(self, limit: int) -> float:
        """The spend at which an add may first cross a threshold; for a balance, the one below which it may."""
        if self.credit:
            return max((*self.budget.warn_below, limit + 1))
        return self.marks_for(limit)[0]

    def marks_for(self, limit: int) -> tuple[float, ...]:
        if limit == self.limit:
            return self.marks
        known, marks = self._other_marks  # a per-key limit or plan: the same one call after call
        if known != limit:
            marks = _marks(self.budget, limit)
            self._other_marks = (limit, marks)
        return marks

    def at(self, now: float) -> _State:
        state = self.state
        if state is not None and state[0].slots[0] <= now < state[0].resets_at:
            return state
        budget = self.budget
        window = budget.period.window(now)
        names = tuple(_slot(budget, start, self.key) for start in window.slots)
        spend = names[:1] if self.past_final else names
        state = (window, names, _expiry(budget, window), spend, spend + self.settings)
        self.state = state  # one assignment: another thread sees the old state or the new, never a mix
        return state


MAX_KEYS_EXPORTED = 10_000


def _picker(kinds: list[int]) -> Callable[[tuple[int, int, int]], Sequence[int]]:
    """``amounts -> [amounts[kind] for kind in kinds]``, done by ``operator.itemgetter`` (one item: a 1-tuple)."""
    if not kinds:
        return lambda amounts: ()
    if len(kinds) == 1:
        (kind,) = kinds
        return lambda amounts: (amounts[kind],)
    return operator.itemgetter(*kinds)


def _marks(budget: Budget, limit: int) -> tuple[float, ...]:
    return tuple(sorted({limit * threshold for threshold in budget.warn_at} | {limit}))


def limit_slot(budget: str, key: str) -> str:
    """A per-key limit in the ledger: its limit + 1 (0: none), expiring at its ``until``."""
    return f"set:limit|{budget}|{key}"


def plan_slot(field: str, key: str) -> str:
    """A key's plan in the ledger: the plan's code (``spec.plan_code``; 0: none)."""
    return f"set:plan|{field}|{key}"


def setting_slots(budget: Budget, key: str) -> tuple[str, ...]:
    if budget.credits:  # a balance: no limit to set (add credits instead)
        return ()
    if budget.plans and budget.for_each is not None:
        return (limit_slot(budget.name, key), plan_slot(budget.for_each, key))
    return (limit_slot(budget.name, key),)


def effective_limit(budget: Budget, values: list[int], offset: int) -> tuple[int, str]:
    """The limit in force and where it comes from: a per-key limit, else the key's plan, else the file."""
    if budget.credits:
        return -budget.overdraft_units, "credits"
    per_key = values[offset]
    if per_key:
        return per_key - 1, "set"
    if budget.plans and budget.for_each is not None and (code := values[offset + 1]):
        for plan, units in budget.plans:
            if plan_code(plan) == code:
                return units, f"plan {plan}"
    return budget.limit_units, "file"


def _could_apply(budget: Budget, values: dict[str, str | None]) -> bool:
    return all(budget.matches(name, value) for name, value in values.items() if value is not None)


def _slot(budget: Budget, start: int, key: str) -> str:
    return f"{budget.name}|{start}|{key}"


def _expiry(budget: Budget, window: Window) -> float:
    """A slot is kept until its window ends, plus a day (status after the reset still reads it)."""
    if budget.period.kind == "rolling":
        return window.slots[0] + budget.period.seconds + 2 * budget.period.bucket_seconds + 86400
    return window.resets_at + 86400


def _nano(usd: Decimal) -> int:
    return int((usd * NANO).to_integral_value(ROUND_HALF_EVEN))


def _in_unit(amount: int, unit: str) -> float:
    return amount / NANO if unit == "USD" else float(amount)


def _amount(amount: int, unit: str) -> str:
    if unit == "USD" and amount < 0:
        return "-" + _amount(-amount, unit)
    if unit == "USD":
        value = Decimal(amount) / NANO
        return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.6f}".rstrip("0")
    return f"{amount:,} tokens"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z")
