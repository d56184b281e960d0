"""Where spend is counted: one integer per budget, key and period slot (nano-USD or tokens).

Reserve, then settle. Before a guarded call, :meth:`Ledger.reserve` checks every matching ``block``
budget and, when none refuses, holds an estimate of the call's cost in each of them, in one atomic
step: every later check, in any process, counts the calls in flight at their estimate. After the
call, :meth:`Ledger.add` settles it: the actual spend is added, what the check held is released
(the ledger's own record of it, so a lost answer cannot count it twice), the budgets' running
estimates learn the call's cost, and ``done`` is handed the window totals after the add, read in
the same atomic step: the one process whose add crosses a threshold is the one that sends the
event. ``add`` is idempotent per ``call_id``. :class:`MemoryLedger` settles at once; the Redis
ledger from its writer thread, so the app's call never waits for Redis after it ran. A settle passes
only its amounts: where they go (a :class:`Settlement`) is the same call after call and the guard
keeps it; in process, a settle in the check's windows is one change per slot (amount less hold) and
``done`` is told only when a total leaves its quiet band.

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
    """The limit when ``settings`` is empty: the file's, or the one in force at a versioned ledger's
    ``settings_version`` (a credit budget: the floor, minus the overdraft)."""
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


class Refused(Exception):  # noqa: N818 - what the ledger says, not an error: the guard turns it into BudgetExceeded
    """A hold's budget refuses the call (raised by :meth:`Ledger.reserve`; nothing was held): an exception, so
    the call that may go, the one on every guarded call's path, makes no object for the answer."""

    def __init__(self, index: int, spent: int, limit: int) -> None:
        super().__init__(index, spent, limit)
        self.index = index
        """The refusing hold's index."""
        self.spent = spent
        """Its budget's spend (in-flight calls at their estimate), or a credit budget's balance."""
        self.limit = limit
        """Its budget's limit in force."""


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


class Settlement(NamedTuple):
    """Where a kind of call's settle adds and what it reads back: the same call after call while the windows
    hold (the guard keeps it), so a settle passes only its amounts."""

    slots: tuple[str, ...]
    """Where each amount goes (a budget and key's current slot)."""
    expiries: tuple[float, ...]
    """Epoch seconds after which each slot can go (past the end of its period)."""
    totals_of: tuple[str, ...]
    """The slots whose values ``done`` is told after the add, read atomically with it."""
    quiet: tuple[tuple[float, float], ...] | None = None
    """When ``totals_of`` are ``slots``: for each, the band ``[low, high)`` within which its total after the add
    calls for no event (the next warning is above it, a balance's next mark below), so a ledger that adds in
    process skips ``done`` when every total stays in its band; None: ``done`` is always told."""
    estimates: tuple[str, ...] = ()
    """The running-estimate slot of each of the first rows: the ``block`` budgets a guarded call held in, in
    the check's order, which the settle's ``teach`` amounts go to."""
    held_slots: tuple[str, ...] = ()
    """Those rows' slots: where the check held when it ran in the same windows (a release with these slots
    is settled as one change per slot: the amount less what was held)."""

    @staticmethod
    def of(increments: Sequence[Increment], totals_of: Sequence[str] = ()) -> Settlement:
        """One made from increments (tools and tests; the guard keeps its own)."""
        return Settlement(
            tuple(item.slot for item in increments), tuple(item.expires_at for item in increments), tuple(totals_of)
        )


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
    def settings_version(self) -> int | None:
        """None when plans and per-key limits may change anywhere at any moment (a shared ledger): the guard reads
        them with the spend on every call. An int when they change only through this ledger, which then changes
        the int (the memory ledger): the guard reads them once per version and holds the limit in force."""
        ...

    @property
    def settings_until(self) -> float:
        """With a ``settings_version``: when the next setting in force stops applying (epoch seconds; inf: none
        does), which changes the version."""
        ...

    @property
    def past_slots_final(self) -> bool:
        """True when a rolling budget's past buckets can no longer change (one process and one clock: every add
        goes to the current bucket), so the guard sums them once per bucket instead of on every call."""
        ...

    def read(self, slots: Sequence[str]) -> list[int]:
        """The value of each slot (0 when never written)."""
        ...

    def reserve(self, call_id: str, holds: Sequence[Hold]) -> tuple[int, ...]:
        """Check every hold's budget and, when none refuses, hold the call's estimate in each: one atomic step.
        Returns the amount held in each hold's first slot (negative for a balance).

        Raises :class:`Refused` when a hold's budget refuses the call, :class:`LedgerUnavailableError` when the
        ledger does not answer and calls are to be refused."""
        ...

    def add(
        self,
        call_id: str,
        settlement: Settlement,
        amounts: Sequence[int],
        done: Done | None = None,
        release: Release | None = None,
        teach: Sequence[int] = (),
    ) -> None:
        """Add each of ``amounts`` (0: nothing) to its ``settlement`` slot once per ``call_id``, giving back what
        ``release`` held and teaching each of the settlement's ``estimates`` slots its ``teach`` amount (negative:
        nothing to teach); ``done`` gets the values of the settlement's ``totals_of`` after the add, read
        atomically with it."""
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
        self._changes = 0
        self.settings_version: int | None = 0
        """Changed by every change of a plan or per-key limit and every expiry: a plain attribute, read on every
        guarded call."""
        self.settings_until = math.inf
        self.past_slots_final = True
        self._lock = threading.Lock()
        self._adds = 0
        self._clock = clock or time.time
        self._estimates: dict[str, int] = {}
        self._bounds: dict[int, tuple[Sequence[Hold], tuple[_Bound, ...]]] = {}

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
        self._next_expiry = self.settings_until = min(self._settings_expiry.values(), default=math.inf)
        self._changes += 1
        self.settings_version = self._changes

    def change(self, settings: Sequence[Setting], entries: Sequence[Entry]) -> list[str | None]:
        with self._lock:
            self._expire_settings()
            old = [self._metas.get(setting.slot) for setting in settings]
            for setting in settings:
                if setting.value is None:
                    self._values.pop(setting.slot, None)
                    self._metas.pop(setting.slot, None)
                    self._settings_expiry.pop(setting.slot, None)
                    continue
                self._values[setting.slot] = setting.value
                if setting.meta is not None:
                    self._metas[setting.slot] = setting.meta
                if setting.expires_at is not None:
                    self._settings_expiry[setting.slot] = setting.expires_at
                else:
                    self._settings_expiry.pop(setting.slot, None)
            self._next_expiry = self.settings_until = min(self._settings_expiry.values(), default=math.inf)
            self._changes += 1
            self.settings_version = self._changes
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

    def reserve(self, call_id: str, holds: Sequence[Hold]) -> tuple[int, ...]:
        bounds = self._bounds.get(id(holds))
        if bounds is None or bounds[0] is not holds:
            bounds = self._bounds_of(holds)
        values = self._values
        get = values.get
        with self._lock:
            # One pass that checks each budget and holds in it, undone if a later one refuses; inlined: this runs on
            # every guarded call.
            held: list[int] = []
            estimates = self._estimates
            expiry = self._expiry
            for slot, bound, credit, least, expires_at, estimate_slot, read_in_full in bounds[1]:
                current = get(slot, 0)
                if read_in_full is None:
                    refused = (current <= bound) if credit else (current >= bound)
                else:
                    refused = self._refuses_read_in_full(read_in_full)
                if refused:
                    self._undo(holds, held)
                    hold = holds[len(held)]
                    spent, limit = self._spent_and_limit(hold)
                    raise Refused(len(held), spent, limit)
                amount = estimates.get(estimate_slot, 0)
                if least > amount:
                    amount = least
                if amount:
                    if credit:
                        amount = -amount
                    values[slot] = current + amount
                    expiry[slot] = expires_at
                held.append(amount)
        return tuple(held)

    def _bounds_of(self, holds: Sequence[Hold]) -> tuple[Sequence[Hold], tuple[_Bound, ...]]:
        """Each hold's slot and the value of it at which its budget refuses (at or below, for a balance), made
        once for the holds the guard hands again call after call; a hold whose spend spans slots or whose limit is
        read with it is marked to be read in full on every call."""
        bounds: tuple[_Bound, ...] = tuple(_bound_of(hold) for hold in holds)
        if len(self._bounds) >= 4096:
            self._bounds.clear()
        known = (holds, bounds)
        self._bounds[id(holds)] = known  # the holds kept with their id: the id cannot be reused meanwhile
        return known

    def _spent_and_limit(self, hold: Hold) -> tuple[int, int]:
        """A hold's spend (its past and every slot) and the limit in force (its settings read, when it has any)."""
        get = self._values.get
        spent = hold.past + sum(map(get, hold.spend, ZEROS))
        if not hold.settings:
            return spent, hold.limit
        if self._next_expiry <= self._clock():
            self._expire_settings()
        return spent, limit_in_force(hold, list(map(get, hold.settings, ZEROS)))

    def _refuses_read_in_full(self, hold: Hold) -> bool:
        return refuses(hold, *self._spent_and_limit(hold))

    def _undo(self, holds: Sequence[Hold], held: list[int]) -> None:
        """Give back the holds made before a later budget refused (a slot a hold made is gone again)."""
        values = self._values
        for hold, amount in zip(holds, held, strict=False):
            if amount:
                slot = hold.spend[0]
                if left := values[slot] - amount:
                    values[slot] = left
                else:
                    del values[slot]

    def add(
        self,
        call_id: str,
        settlement: Settlement,
        amounts: Sequence[int],
        done: Done | None = None,
        release: Release | None = None,
        teach: Sequence[int] = (),
    ) -> None:
        values = self._values
        get = values.get
        expiry = self._expiry
        quiet = settlement.quiet
        # zip(strict=False) on this path: the lengths match by construction, and strict=True costs a quarter of a
        # microsecond a loop (CPython 3.11).
        with self._lock:
            if quiet is not None and (release is None or release.slots == settlement.held_slots):
                # The totals are the slots, and the check held in the first rows' slots: one change per slot (the
                # amount less what was held), each total looked at in its band. This runs on every guarded call.
                loud = False
                held = itertools.chain(release.held if release is not None else (), ZEROS)  # 0 in the later rows
                for slot, amount, expires_at, (low, high), hold in zip(
                    settlement.slots, amounts, settlement.expiries, quiet, held, strict=False
                ):
                    if amount:
                        total = values[slot] = get(slot, 0) + amount - hold
                        expiry[slot] = expires_at
                        if not low <= total < high:
                            loud = True
                    elif hold:
                        values[slot] -= hold
                if not loud:
                    done = None
            else:
                if release is not None:  # in one process the check's answer is never lost: it says what was held
                    for slot, amount in zip(release.slots, release.held, strict=False):
                        if amount:
                            values[slot] -= amount
                if self._settings_expiry and self._next_expiry <= self._clock():
                    self._expire_settings()
                for slot, amount, expires_at in zip(settlement.slots, amounts, settlement.expiries, strict=False):
                    if amount:
                        values[slot] = get(slot, 0) + amount
                        expiry[slot] = expires_at
            totals = list(map(get, settlement.totals_of, ZEROS)) if done is not None else []
            if teach:
                known = self._estimates
                for slot, amount in zip(settlement.estimates, teach, strict=False):
                    if amount >= 0 and amount != (estimate := known.get(slot, 0)):
                        known[slot] = next_estimate(estimate, amount)
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

_Bound = tuple[str, int, bool, int, float, str, Hold | None]
"""A hold in memory: its slot, the slot's value at which its budget refuses, whether it is a balance, the hold's
lower bound, its expiry, its running estimate's slot, and the hold itself when it is read in full on every call
(more slots, or its limit read with its spend)."""


def _bound_of(hold: Hold) -> _Bound:
    read_in_full = None if len(hold.spend) == 1 and not hold.settings else hold
    return (hold.spend[0], _bound(hold), hold.credit, hold.least, hold.expires_at, hold.estimate, read_in_full)


def _bound(hold: Hold) -> int:
    """The value of a hold's one slot at which its budget refuses the call: a balance at or below its floor
    (``bound`` = floor - past), a spend at or over its limit or, with ``reserve: true``, one that ``least`` would
    take past it (refused from ``limit - least + 1`` on)."""
    if hold.credit:
        return hold.limit - hold.past
    refused_from = min(hold.limit, hold.limit - hold.least + 1) if hold.fits else hold.limit
    return refused_from - hold.past


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
