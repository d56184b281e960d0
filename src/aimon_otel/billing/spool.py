"""Usage events waiting for the billing system, on disk: they outlive an outage and a restart.

SQLite (stdlib ``sqlite3``) in WAL mode with ``synchronous=FULL``: an event the spool accepted is on
disk before ``put`` returns, so a process killed right after still bills it once it is started again.
Events leave oldest first and only when the billing system has them (``remove`` after a send). The
spool is bounded: past ``max_events`` the oldest are dropped, counted and logged, so a billing system
that is gone for good cannot fill the disk. The event's id is unique: putting one twice keeps one.

Several processes may share one spool (the workers of one app server, by default): ``take`` leases the
events it returns for a while, so two senders never send the same batch at once, and a sender that dies
mid-send leaves its lease to run out, after which any sender takes those events again.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    leased_until REAL NOT NULL DEFAULT 0
)
"""
_SENT = """
CREATE TABLE IF NOT EXISTS sent (
    day TEXT NOT NULL,
    tenant TEXT NOT NULL,
    unit TEXT NOT NULL,
    events INTEGER NOT NULL,
    cost_usd TEXT NOT NULL,
    billed TEXT NOT NULL,
    PRIMARY KEY (day, tenant, unit)
)
"""
NO_TENANT = "(none)"


@dataclass(frozen=True)
class Spooled:
    """One waiting event: its place in the queue, its id, its serialised body."""

    seq: int
    id: str
    body: str


class Spool:
    """A bounded first-in, first-out queue of events in one SQLite file, safe to use from many threads."""

    def __init__(self, path: str | Path, max_events: int) -> None:
        if max_events < 1:
            raise ValueError(f"the billing spool's cap must be at least 1 event, not {max_events}")
        self.path = Path(path)
        self.max_events = max_events
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")  # other processes' writes: wait, do not fail
        self._db.execute(_SCHEMA)
        self._db.execute(_SENT)

    def put(self, events: Iterable[tuple[str, str]]) -> int:
        """Keep ``(id, body)`` events (an id already here is kept once); returns how many of the oldest were
        dropped to stay within the cap."""
        rows = list(events)
        if not rows:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR IGNORE INTO events (id, body) VALUES (?, ?)", rows)
                dropped = max(0, self._count() - self.max_events)
                if dropped:
                    self._db.execute(
                        "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)", (dropped,)
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return dropped

    def _count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def take(self, limit: int, lease: float, now: float | None = None) -> list[Spooled]:
        """Up to ``limit`` events no other sender holds, oldest first, leased to this one for ``lease`` seconds
        (``remove`` them once sent, ``release`` them to send again later)."""
        moment = time.time() if now is None else now
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT seq, id, body FROM events WHERE leased_until <= ? ORDER BY seq LIMIT ?", (moment, limit)
                ).fetchall()
                self._db.executemany(
                    "UPDATE events SET leased_until = ? WHERE seq = ?", [(moment + lease, row[0]) for row in rows]
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return [Spooled(int(seq), str(event_id), str(body)) for seq, event_id, body in rows]

    def release(self, ids: Sequence[str]) -> None:
        """Give back leased events that were not delivered: the next sender to look takes them."""
        if ids:
            with self._lock:
                self._db.executemany("UPDATE events SET leased_until = 0 WHERE id = ?", [(i,) for i in ids])

    def remove(self, ids: Sequence[str], delivered: Sequence[Mapping[str, Any]] = ()) -> None:
        """Forget events the billing system has (sent, or answered as already received) or refused; the
        ``delivered`` ones (their JSON) are added to the per-day, per-tenant tally ``billing reconcile`` reads."""
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("DELETE FROM events WHERE id = ?", [(event_id,) for event_id in ids])
                self._add_to_tally(delivered)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _add_to_tally(self, delivered: Sequence[Mapping[str, Any]]) -> None:
        sums: dict[tuple[str, str, str], list[Any]] = {}
        for event in delivered:
            day = datetime.fromtimestamp(float(event.get("timestamp", 0.0)), UTC).date().isoformat()
            key = (day, str(event.get("tenant") or NO_TENANT), str(event.get("unit")))
            found = sums.setdefault(key, [0, Decimal(0), Decimal(0)])
            found[0] += 1
            found[1] += Decimal(str(event.get("cost_usd") or "0"))
            found[2] += Decimal(str(event.get("billed") or "0"))
        for key, (events, cost, billed) in sums.items():
            row = self._db.execute(
                "SELECT events, cost_usd, billed FROM sent WHERE day = ? AND tenant = ? AND unit = ?", key
            ).fetchone()
            if row is not None:
                events, cost, billed = events + row[0], cost + Decimal(row[1]), billed + Decimal(row[2])
            self._db.execute(
                "INSERT OR REPLACE INTO sent (day, tenant, unit, events, cost_usd, billed) VALUES (?, ?, ?, ?, ?, ?)",
                (*key, events, str(cost), str(billed)),
            )

    def tally(self, first_day: date, end_day: date) -> dict[str, tuple[int, Decimal, Decimal]]:
        """Per tenant, what the billing system received for calls from ``first_day`` up to (not including)
        ``end_day`` (UTC days): events, their cost (USD, before margin), and the amount billed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT tenant, events, cost_usd, billed FROM sent WHERE day >= ? AND day < ?",
                (first_day.isoformat(), end_day.isoformat()),
            ).fetchall()
        found: dict[str, tuple[int, Decimal, Decimal]] = {}
        for tenant, events, cost, billed in rows:
            was = found.get(tenant, (0, Decimal(0), Decimal(0)))
            found[tenant] = (was[0] + int(events), was[1] + Decimal(cost), was[2] + Decimal(billed))
        return found

    def summary(self) -> list[dict[str, object]]:
        """What waits, per customer: events, the billed amount (exact) and unit, the oldest and newest call."""
        groups: dict[tuple[str, str], dict[str, object]] = {}
        with self._lock:
            rows = self._db.execute("SELECT body FROM events ORDER BY seq").fetchall()
        for (body,) in rows:
            event = json.loads(body)
            key = (str(event.get("customer")), str(event.get("unit")))
            group = groups.setdefault(
                key,
                {"customer": key[0], "unit": key[1], "events": 0, "billed": Decimal(0), "oldest": None, "newest": None},
            )
            group["events"] = int(str(group["events"])) + 1
            group["billed"] = Decimal(str(group["billed"])) + Decimal(str(event.get("billed", "0")))
            when = float(event.get("timestamp", 0.0))
            group["oldest"] = when if group["oldest"] is None else min(float(str(group["oldest"])), when)
            group["newest"] = when if group["newest"] is None else max(float(str(group["newest"])), when)
        return sorted(groups.values(), key=lambda g: (str(g["customer"]), str(g["unit"])))

    def __len__(self) -> int:
        """Events waiting, from every process sharing the file."""
        with self._lock:
            return self._count()

    def close(self) -> None:
        with self._lock:
            self._db.close()
