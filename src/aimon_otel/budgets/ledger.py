"""Where spend is counted: one integer per budget, key and period slot (nano-USD or tokens).

The guard reads the slots of every matching budget in one :meth:`Ledger.read` and adds a call's
spend with one :meth:`Ledger.add`, which hands ``done`` the window totals after the add, read in
the same atomic step: the one process whose add crosses a threshold is the one that sends the
event, even with many processes on one shared ledger. ``add`` is idempotent per ``call_id``.
:class:`MemoryLedger` calls ``done`` at once; the Redis ledger from its writer thread, so the
app's call never waits for Redis after it ran.

:class:`MemoryLedger` is exact within one process; ``redis_ledger.RedisLedger`` is shared.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol


class LedgerUnavailableError(Exception):
    """The shared ledger did not answer and calls are to be refused (``AIMON_BUDGET_FAIL=closed``)."""


class Increment(NamedTuple):
    slot: str
    amount: int
    expires_at: float
    """Epoch seconds after which the slot can go (past the end of its period)."""


Done = Callable[[list[int]], None]

HISTORY_KEPT = 1000
"""Audit entries kept per budget (newest first)."""


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

    def add(
        self,
        call_id: str,
        increments: Sequence[Increment],
        totals_of: Sequence[str],
        done: Done | None = None,
        wait: bool = False,
    ) -> None:
        """Add once per ``call_id``; ``done`` gets the values of ``totals_of`` after the add, read atomically with it.

        ``wait``: return only once the add is in the ledger (a block budget counts the call)."""
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

    def add(
        self,
        call_id: str,
        increments: Sequence[Increment],
        totals_of: Sequence[str],
        done: Done | None = None,
        wait: bool = False,
    ) -> None:
        values = self._values
        with self._lock:
            if self._settings_expiry and self._next_expiry <= self._clock():
                self._expire_settings()
            for slot, amount, expires_at in increments:
                values[slot] = values.get(slot, 0) + amount
                self._expiry[slot] = expires_at
            totals = [values.get(slot, 0) for slot in totals_of]
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


class Clock(Protocol):
    def __call__(self) -> float: ...


def with_old(entry: str, old: str | None) -> str:
    """An audit entry (JSON) with ``old``: the meta the change replaced, or null."""
    import json

    data = json.loads(entry)
    data["old"] = json.loads(old) if old else None
    return json.dumps(data, sort_keys=True)
