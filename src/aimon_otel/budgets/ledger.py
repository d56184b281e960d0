"""Where spend is counted: one integer per budget, key and period slot (nano-USD or tokens).

Reserve, then settle. Before a guarded call, :meth:`Ledger.reserve` checks every matching ``block``
budget and, when none refuses, holds an estimate of the call's cost in each of them, in one atomic
step: every later check, in any process, counts the calls in flight at their estimate. After the
call, :meth:`Ledger.add` settles it: the actual spend is added, what the check held is released
(the ledger's own record of it, so a lost answer cannot count it twice), the budgets' running
estimates learn the call's cost, and ``done`` is handed the window totals after the add, read in
the same atomic step: the one process whose add crosses a threshold is the one that sends the
event. ``add`` is idempotent per ``call_id``. :class:`MemoryLedger` settles at once; the Redis
ledger from its writer thread, so the app's call never waits for Redis after it ran.

A call that never settles (its process died mid-call) keeps its estimate: it is settled at its
estimate rather than expired, because a call cut off mid-flight may well have been billed, and
counting its estimate errs on the side of the money (an expiring hold would count it as $0).

:class:`MemoryLedger` is exact within one process; ``redis_ledger.RedisLedger`` is shared.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, Protocol


class LedgerUnavailableError(Exception):
    """The shared ledger did not answer and calls are to be refused (``AIMON_BUDGET_FAIL=closed``)."""


class Hold(NamedTuple):
    """One ``block`` budget (and key) in a guarded call's check: where its spend is, how its limit is found,
    what the call holds of it while it runs."""

    spend: tuple[str, ...]
    """The slots whose sum is the spend (a credit budget: the balance); the call's hold goes in the first."""
    settings: tuple[str, ...]
    """Its per-key limit's slot, then its key's plan's; empty when the ledger has no settings in use."""
    past: int
    """Spend the guard already knows beyond ``spend`` (a rolling window's past buckets)."""
    limit: int
    """The file's limit (a credit budget: the floor, minus the overdraft)."""
    plans: Mapping[int, int]
    """Limit by plan code."""
    credit: bool
    least: int
    """The hold's lower bound: the request's ``max_tokens`` at the model's output price (tokens for a token
    budget); 0 when unknown. The hold is the larger of this and the budget's running estimate."""
    fits: bool
    """``reserve: true``: refuse a call when the spend plus ``least`` would pass the limit."""
    expires_at: float
    estimate: str
    """The slot of the budget's running estimate of a call's cost."""


class Verdict(NamedTuple):
    refused: int
    """The index of the hold that refuses the call, or -1 when the call may go."""
    spent: int
    """The refusing budget's spend (in-flight calls at their estimate), or a credit budget's balance."""
    limit: int
    """The refusing budget's limit in force."""
    held: tuple[int, ...]
    """When the call may go: the amount held in each hold's first slot (negative for a balance)."""


class Release(NamedTuple):
    """What a guarded call's check held, for the settle to give back."""

    call_id: str
    slots: tuple[str, ...]
    held: tuple[int, ...]
    """What this process was told was held (0 when the check's answer was lost: the ledger's own record rules)."""


class Increment(NamedTuple):
    slot: str
    amount: int
    expires_at: float
    """Epoch seconds after which the slot can go (past the end of its period)."""


Done = Callable[[list[int]], None]

HISTORY_KEPT = 1000
"""Audit entries kept per budget (newest first)."""
ESTIMATE_DECAY = 8
"""A running estimate jumps up to a larger call at once and comes down by an eighth of the gap per smaller
call: holds err on the side of more, as a budget's guarantee needs, and follow a cheaper mix within tens of calls."""


class Setting(NamedTuple):
    """Run-time data beside the spend: a key's plan or a per-key limit, as an integer slot the guard reads
    with the spend, and a description (JSON) for listings and the audit trail."""

    slot: str
    value: int | None
    """None clears it."""
    expires_at: float | None
    """Epoch seconds when it stops applying (a per-key limit's ``until``); None: until cleared."""
    meta: str | None


class Entry(NamedTuple):
    """An audit entry to append to ``trail`` (JSON); the ledger fills its ``old`` from ``setting``'s old meta."""

    trail: str
    setting: int
    entry: str


class Ledger(Protocol):
    @property
    def settings_in_use(self) -> bool:
        """False only when the ledger knows no plan or per-key limit is set anywhere (the memory ledger with
        none): the guard then reads the spend alone, at the cost it had before plans existed."""
        ...

    @property
    def past_slots_final(self) -> bool:
        """True when a rolling budget's past buckets can no longer change (one process and one clock: every add
        goes to the current bucket), so the guard sums them once per bucket instead of on every call."""
        ...

    def read(self, slots: Sequence[str]) -> list[int]:
        """The value of each slot (0 when never written)."""
        ...

    def reserve(self, call_id: str, holds: Sequence[Hold]) -> Verdict:
        """Check every hold's budget and, when none refuses, hold the call's estimate in each: one atomic step.

        Raises :class:`LedgerUnavailableError` when the ledger does not answer and calls are to be refused."""
        ...

    def add(
        self,
        call_id: str,
        increments: Sequence[Increment],
        totals_of: Sequence[str],
        done: Done | None = None,
        release: Release | None = None,
        estimates: Sequence[tuple[str, int]] = (),
    ) -> None:
        """Add once per ``call_id``, giving back what ``release`` held and teaching each ``estimates`` slot the
        call's amount; ``done`` gets the values of ``totals_of`` after the add, read atomically with it."""
        ...

    def slots(self, prefix: str) -> list[str]:
        """Slots whose name starts with ``prefix`` (for ``budgets status`` over every key)."""
        ...

    def change(self, settings: Sequence[Setting], entries: Sequence[Entry]) -> list[str | None]:
        """Apply ``settings`` and append ``entries`` in one atomic step; returns each setting's old meta."""
        ...

    def metas(self, prefix: str) -> dict[str, str]:
        """The meta of every setting in force whose slot starts with ``prefix``."""
        ...

    def trail(self, name: str, count: int = HISTORY_KEPT) -> list[str]:
        """The newest ``count`` audit entries of ``name`` (JSON), newest first."""
        ...

    def top_up(
        self, slot: str, amount: int, reference: str, record: str, trail: str, entry: str
    ) -> tuple[str | None, int]:
        """Add ``amount`` to a balance once per ``reference`` slot, with its audit entry (``balance`` filled in).

        Returns the reference's first record (JSON) if it was used before (nothing added), else None, and
        the balance after."""
        ...

    def close(self) -> None: ...


class MemoryLedger:
    """In-process counters under one lock; expired slots swept now and then."""

    SWEEP_EVERY = 4096

    def __init__(self, clock: Clock | None = None) -> None:
        self._values: dict[str, int] = {}
        self._expiry: dict[str, float] = {}
        self._settings_expiry: dict[str, float] = {}
        """Settings that stop applying at a moment (read as 0 from then on)."""
        self._next_expiry = math.inf
        self._metas: dict[str, str] = {}
        self._trails: dict[str, list[str]] = {}
        self._settings: set[str] = set()
        self.settings_in_use = False
        """Whether any plan or per-key limit is set: a plain attribute, read on every guarded call."""
        self.past_slots_final = True
        self._lock = threading.Lock()
        self._adds = 0
        self._clock = clock or time.time
        self._estimates: dict[str, int] = {}

    def read(self, slots: Sequence[str]) -> list[int]:
        values = self._values
        with self._lock:
            if self._settings_expiry and self._next_expiry <= self._clock():
                self._expire_settings()
            return [values.get(slot, 0) for slot in slots]

    def _expire_settings(self) -> None:
        now = self._clock()
        if self._next_expiry > now:
            return
        for slot in [slot for slot, at in self._settings_expiry.items() if at <= now]:
            del self._settings_expiry[slot]
            self._values.pop(slot, None)
            self._metas.pop(slot, None)
            self._settings.discard(slot)
        self.settings_in_use = bool(self._settings)
        self._next_expiry = min(self._settings_expiry.values(), default=math.inf)

    def change(self, settings: Sequence[Setting], entries: Sequence[Entry]) -> list[str | None]:
        with self._lock:
            self._expire_settings()
            old = [self._metas.get(setting.slot) for setting in settings]
            for setting in settings:
                if setting.value is None:
                    self._values.pop(setting.slot, None)
                    self._metas.pop(setting.slot, None)
                    self._settings_expiry.pop(setting.slot, None)
                    self._settings.discard(setting.slot)
                    continue
                self._settings.add(setting.slot)
                self._values[setting.slot] = setting.value
                if setting.meta is not None:
                    self._metas[setting.slot] = setting.meta
                if setting.expires_at is not None:
                    self._settings_expiry[setting.slot] = setting.expires_at
                    self._next_expiry = min(self._next_expiry, setting.expires_at)
                else:
                    self._settings_expiry.pop(setting.slot, None)
            self.settings_in_use = bool(self._settings)
            for entry in entries:
                trail = self._trails.setdefault(entry.trail, [])
                trail.insert(0, with_old(entry.entry, old[entry.setting]))
                del trail[HISTORY_KEPT:]
        return old

    def top_up(
        self, slot: str, amount: int, reference: str, record: str, trail: str, entry: str
    ) -> tuple[str | None, int]:
        import json

        with self._lock:
            first = self._metas.get(reference)
            if first is not None:
                return first, self._values.get(slot, 0)
            self._metas[reference] = record
            balance = self._values[slot] = self._values.get(slot, 0) + amount
            self._expiry[slot] = math.inf
            data = json.loads(entry)
            data["balance"] = str(balance)
            kept = self._trails.setdefault(trail, [])
            kept.insert(0, json.dumps(data, sort_keys=True))
            del kept[HISTORY_KEPT:]
            return None, balance

    def metas(self, prefix: str) -> dict[str, str]:
        with self._lock:
            self._expire_settings()
            return {slot: meta for slot, meta in self._metas.items() if slot.startswith(prefix)}

    def trail(self, name: str, count: int = HISTORY_KEPT) -> list[str]:
        with self._lock:
            return list(self._trails.get(name, [])[:count])

    def reserve(self, call_id: str, holds: Sequence[Hold]) -> Verdict:
        values = self._values
        get = values.get
        with self._lock:
            if self._settings_expiry and self._next_expiry <= self._clock():
                self._expire_settings()
            for index, hold in enumerate(holds):
                spend = hold.spend
                spent = hold.past + (get(spend[0], 0) if len(spend) == 1 else sum(map(get, spend, ZEROS)))
                limit = hold.limit
                settings = hold.settings
                if settings:  # the limit in force (inlined: this runs on every guarded call)
                    if own := get(settings[0]):
                        limit = own - 1
                    elif len(settings) > 1 and (plan := get(settings[1])):
                        limit = hold.plans.get(plan, limit)
                if refuses(hold, spent, limit):
                    return Verdict(index, spent, limit, ())
            held: list[int] = []
            estimates = self._estimates
            for hold in holds:
                amount = hold.least
                estimate = estimates.get(hold.estimate, 0)
                if estimate > amount:
                    amount = estimate
                if amount:
                    if hold.credit:
                        amount = -amount
                    slot = hold.spend[0]
                    values[slot] = get(slot, 0) + amount
                    self._expiry[slot] = hold.expires_at
                held.append(amount)
        return Verdict(-1, 0, 0, tuple(held))

    def add(
        self,
        call_id: str,
        increments: Sequence[Increment],
        totals_of: Sequence[str],
        done: Done | None = None,
        release: Release | None = None,
        estimates: Sequence[tuple[str, int]] = (),
    ) -> None:
        values = self._values
        with self._lock:
            if self._settings_expiry and self._next_expiry <= self._clock():
                self._expire_settings()
            if release is not None:  # in one process the check's answer is never lost: it says what was held
                for slot, amount in zip(release.slots, release.held, strict=True):
                    if amount:
                        values[slot] -= amount
            for slot, amount, expires_at in increments:
                values[slot] = values.get(slot, 0) + amount
                self._expiry[slot] = expires_at
            known = self._estimates
            for slot, amount in estimates:
                estimate = known.get(slot, 0)
                if amount != estimate:
                    known[slot] = next_estimate(estimate, amount)
            totals = list(map(values.get, totals_of, ZEROS))
            self._adds += 1
            if self._adds % self.SWEEP_EVERY == 0:
                self._sweep()
        if done is not None:
            done(totals)

    def slots(self, prefix: str) -> list[str]:
        with self._lock:
            return [slot for slot in self._values if slot.startswith(prefix)]

    def close(self) -> None:
        pass

    def _sweep(self) -> None:
        now = self._clock()
        for slot in [slot for slot, expires_at in self._expiry.items() if expires_at < now]:
            del self._expiry[slot]
            self._values.pop(slot, None)


ZEROS = itertools.repeat(0)


def limit_in_force(hold: Hold, settings: Sequence[int]) -> int:
    """A per-key limit (stored + 1; 0: none), else the key's plan's limit, else the file's."""
    if settings[0]:
        return settings[0] - 1
    if len(settings) > 1 and settings[1]:
        return hold.plans.get(settings[1], hold.limit)
    return hold.limit


def refuses(hold: Hold, spent: int, limit: int) -> bool:
    """A balance at or below its floor; a spend at or over its limit, or (``reserve: true``) one the call's
    ``max_tokens`` could take past it."""
    if hold.credit:
        return spent <= limit
    return spent >= limit or (hold.fits and spent + hold.least > limit)


def next_estimate(estimate: int, amount: int) -> int:
    """Up to a larger call at once; down by an eighth of the gap (rounded up) after a smaller one."""
    if amount >= estimate:
        return amount
    return estimate + (amount - estimate) // ESTIMATE_DECAY  # floor of a negative: the eighth rounded up


class Clock(Protocol):
    def __call__(self) -> float: ...


def with_old(entry: str, old: str | None) -> str:
    """An audit entry (JSON) with ``old``: the meta the change replaced, or null."""
    import json

    data = json.loads(entry)
    data["old"] = json.loads(old) if old else None
    return json.dumps(data, sort_keys=True)
