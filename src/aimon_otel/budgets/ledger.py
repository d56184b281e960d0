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


class Ledger(Protocol):
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

    def close(self) -> None: ...


class MemoryLedger:
    """In-process counters under one lock; expired slots swept now and then."""

    SWEEP_EVERY = 4096

    def __init__(self, clock: Clock | None = None) -> None:
        self._values: dict[str, int] = {}
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()
        self._adds = 0
        self._clock = clock or time.time

    def read(self, slots: Sequence[str]) -> list[int]:
        values = self._values
        with self._lock:
            return [values.get(slot, 0) for slot in slots]

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
