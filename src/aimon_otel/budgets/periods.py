"""Budget periods: calendar days, ISO weeks, months and years in a timezone, and rolling windows.

A calendar period starts at local midnight in the budgets file's timezone (``zoneinfo``), never
at "now minus 30 days": a Berlin month starts at Berlin midnight, a day that changes to or from
daylight saving time is 23 or 25 hours long.

A rolling window (``rolling: 24h``) is counted in 24 buckets of a 24th of the window each, plus
the bucket under way: it covers between the whole window and one bucket more. It errs on the
side of counting slightly more, so a ``block`` budget never lets a tenant overspend because of
the bucketing; spend leaves the window one bucket at a time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

CALENDAR = ("day", "week", "month", "year")
ROLLING_BUCKETS = 24
_ROLLING = re.compile(r"^\s*(?:rolling\s*:?\s*)?(\d+)\s*([hd])\s*$")
_UNIT_SECONDS = {"h": 3600, "d": 86400}
MAX_ROLLING_SECONDS = 366 * 86400


@dataclass(frozen=True)
class Window:
    """The period a call falls in: when it started, when spend leaves it, and its ledger slots (epoch seconds)."""

    start: float
    resets_at: float
    slots: tuple[int, ...]
    """Start of each ledger slot the window sums; the first is the one new spend goes to."""


@dataclass(frozen=True, eq=False)
class Period:
    """``day``, ``week``, ``month``, ``year`` (calendar, in ``zone``) or a rolling window of ``seconds``."""

    kind: str
    zone: ZoneInfo
    seconds: int = 0
    _cached: list[Window | None] = field(default_factory=lambda: [None], repr=False, compare=False)

    @property
    def text(self) -> str:
        """As a person writes it: ``month``, ``rolling 24h``."""
        if self.kind != "rolling":
            return self.kind
        days, rest = divmod(self.seconds, 86400)
        return f"rolling {days}d" if rest == 0 else f"rolling {self.seconds // 3600}h"

    @property
    def bucket_seconds(self) -> int:
        return self.seconds // ROLLING_BUCKETS

    def window(self, now: float) -> Window:
        """The window ``now`` (epoch seconds) falls in; cached until it ends."""
        if self.kind == "credits":
            return BALANCE
        cached = self._cached[0]
        if cached is not None and cached.slots[0] <= now < cached.resets_at:
            return cached
        window = self._rolling(now) if self.kind == "rolling" else self._calendar(now)
        self._cached[0] = window
        return window

    def _calendar(self, now: float) -> Window:
        today = datetime.fromtimestamp(now, self.zone).date()
        first = _first_day(self.kind, today)
        start = _midnight(first, self.zone)
        end = _midnight(_next_first_day(self.kind, first), self.zone)
        return Window(start, end, (int(start),))

    def _rolling(self, now: float) -> Window:
        bucket = self.bucket_seconds
        current = int(now) // bucket * bucket
        slots = tuple(current - i * bucket for i in range(ROLLING_BUCKETS + 1))
        return Window(float(slots[-1]), float(current + bucket), slots)


BALANCE = Window(0.0, math.inf, (0,))
"""A credit budget's one window: a balance has no period and never resets."""


def credits_period(zone: ZoneInfo) -> Period:
    """The period of a ``credits: true`` budget: one slot, the balance, kept forever."""
    return Period("credits", zone)


def _first_day(kind: str, today: date) -> date:
    if kind == "day":
        return today
    if kind == "week":
        return today - timedelta(days=today.weekday())  # ISO weeks start on Monday
    if kind == "month":
        return today.replace(day=1)
    return today.replace(month=1, day=1)


def _next_first_day(kind: str, first: date) -> date:
    if kind == "day":
        return first + timedelta(days=1)
    if kind == "week":
        return first + timedelta(days=7)
    if kind == "month":
        return date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return date(first.year + 1, 1, 1)


def _midnight(day: date, zone: ZoneInfo) -> float:
    return datetime.combine(day, time(0), tzinfo=zone).timestamp()


def parse_period(value: object, zone: ZoneInfo) -> Period:
    """``day``, ``week``, ``month``, ``year``, ``{rolling: 24h}`` or ``"rolling 24h"``.

    A ValueError says what is accepted."""
    if isinstance(value, dict) and list(value) == ["rolling"]:
        value = f"rolling {value['rolling']}"
    if isinstance(value, str):
        if value in CALENDAR:
            return Period(value, zone)
        found = _ROLLING.match(value)
        if found and value.strip().startswith("rolling"):
            seconds = int(found.group(1)) * _UNIT_SECONDS[found.group(2)]
            if 0 < seconds <= MAX_ROLLING_SECONDS:
                return Period("rolling", zone, seconds)
            raise ValueError(f"a rolling window must be between 1h and 366d, got {value!r}")
    raise ValueError(
        f"{value!r} is not a period; use day, week (ISO, from Monday), month or year (calendar, in the "
        "file's timezone), or a rolling window such as {rolling: 24h}, {rolling: 7d}, {rolling: 30d}"
    )
