"""Usage events waiting for the billing system, on disk: they outlive an outage and a restart.

SQLite (stdlib ``sqlite3``) in WAL mode with ``synchronous=FULL``: an event the spool accepted is on
disk before ``put`` returns, so a process killed right after still bills it once it is started again.
Events leave oldest first and only when the billing system has them (``remove`` after a send). The
spool is bounded: past ``max_events`` the oldest are dropped, counted and logged, so a billing system
that is gone for good cannot fill the disk. The event's id is unique: putting one twice keeps one.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL
)
"""


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
        self._db.execute(_SCHEMA)
        self._size = int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def put(self, events: Iterable[tuple[str, str]]) -> int:
        """Keep ``(id, body)`` events (an id already here is kept once); returns how many of the oldest were
        dropped to stay within the cap."""
        rows = list(events)
        if not rows:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                before = self._db.total_changes
                self._db.executemany("INSERT OR IGNORE INTO events (id, body) VALUES (?, ?)", rows)
                self._size += self._db.total_changes - before
                dropped = max(0, self._size - self.max_events)
                if dropped:
                    self._db.execute(
                        "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)", (dropped,)
                    )
                    self._size -= dropped
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._size = int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
                raise
        return dropped

    def oldest(self, limit: int) -> list[Spooled]:
        """Up to ``limit`` events, oldest first (they stay until removed)."""
        with self._lock:
            rows = self._db.execute("SELECT seq, id, body FROM events ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [Spooled(int(seq), str(event_id), str(body)) for seq, event_id, body in rows]

    def remove(self, ids: Sequence[str]) -> None:
        """Forget events the billing system has (sent, or answered as already received)."""
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                before = self._db.total_changes
                self._db.executemany("DELETE FROM events WHERE id = ?", [(event_id,) for event_id in ids])
                self._size -= self._db.total_changes - before
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

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
        return self._size

    def close(self) -> None:
        with self._lock:
            self._db.close()
