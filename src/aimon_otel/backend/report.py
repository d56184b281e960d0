"""``aimon-otel report``: spend, calls and tokens per group and per day or month, from Prometheus.

For finance: the figures to paste into an invoice. Each period is a calendar day or month in the
given timezone, queried as one window ending at its end (``counted_increase``, so calls a process
made before its first scrape count too). Money is rounded to the cent once per row, and every total
is the sum of the rows shown, so the columns add up to the overall figure exactly.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from aimon_otel.backend.alerts import CALLS, COST, counted_increase
from aimon_otel.errors import AimonConfigError

GROUPS = {
    "tenant": "tenant_id",
    "model": "gen_ai_request_model",
    "provider": "gen_ai_provider_name",
    "feature": "aimon_feature",
    "user": "user_id",
    "agent": "gen_ai_agent_name",
}
TOKENS = 'gen_ai_client_token_usage_sum{gen_ai_token_type=~"input|output"}'
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Row:
    period: str
    group: tuple[str, ...]
    spend: Decimal
    calls: int
    tokens: int


def periods(start: date, end: date, step: str, zone: ZoneInfo) -> Iterator[tuple[str, datetime, datetime]]:
    """(label, start, end) of each calendar day or month from ``start`` up to ``end`` (exclusive), in ``zone``."""
    day = start
    while day < end:
        following = _next(day, step)
        following = min(following, end)
        label = day.isoformat() if step == "day" else day.strftime("%Y-%m")
        yield label, datetime.combine(day, time(0), zone), datetime.combine(following, time(0), zone)
        day = following


def _next(day: date, step: str) -> date:
    if step == "day":
        return day + timedelta(days=1)
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


class Prometheus:
    def __init__(self, url: str, timeout: float = 60) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, expr: str, at: datetime) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"query": expr, "time": f"{at.timestamp():.3f}"})
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query?{params}", timeout=self.timeout) as answer:
                body = json.loads(answer.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:300]
            raise AimonConfigError(f"Prometheus at {self.url} refused the query ({error.code}): {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            raise AimonConfigError(f"cannot reach Prometheus at {self.url}: {error}") from None
        if body.get("status") != "success":
            raise AimonConfigError(f"Prometheus at {self.url}: {body.get('error', body)}")
        return list(body["data"]["result"])


def build(
    prometheus: Prometheus,
    start: date,
    end: date,
    by: list[str],
    step: str,
    zone: ZoneInfo,
    progress: Callable[[int, int], None] | None = None,
) -> list[Row]:
    labels = [GROUPS[name] for name in by]
    group_by = ", ".join(labels)
    rows: list[Row] = []
    spans = list(periods(start, end, step, zone))
    for index, (label, period_start, period_end) in enumerate(spans):
        if progress is not None:
            progress(index, len(spans))
        window = f"{int(period_end.timestamp() - period_start.timestamp())}s"  # real seconds: DST days differ
        found: dict[tuple[str, ...], dict[str, Decimal]] = {}
        for column, metric in (("spend", COST), ("calls", CALLS), ("tokens", TOKENS)):
            for sample in prometheus.query(counted_increase(metric, window, group_by), period_end):
                key = tuple(sample["metric"].get(name, "") or "(none)" for name in labels)
                found.setdefault(key, {})[column] = Decimal(sample["value"][1])
        for key, values in sorted(found.items()):
            spend = values.get("spend", Decimal(0)).quantize(CENT, ROUND_HALF_EVEN)
            calls = int(values.get("calls", Decimal(0)).to_integral_value(ROUND_HALF_EVEN))
            tokens = int(values.get("tokens", Decimal(0)).to_integral_value(ROUND_HALF_EVEN))
            if spend or calls or tokens:
                rows.append(Row(label, key, spend, calls, tokens))
    if progress is not None:
        progress(len(spans), len(spans))
    return rows


def render(rows: list[Row], by: list[str], fmt: str) -> str:
    header = ["period", *by, "spend_usd", "calls", "tokens"]
    total = (sum((r.spend for r in rows), Decimal(0)), sum(r.calls for r in rows), sum(r.tokens for r in rows))
    records = [[r.period, *r.group, f"{r.spend:.2f}", str(r.calls), str(r.tokens)] for r in rows]
    total_record = ["total", *([""] * len(by)), f"{total[0]:.2f}", str(total[1]), str(total[2])]
    if fmt == "json":
        return json.dumps(
            {
                "rows": [dict(zip(header, record, strict=True)) for record in records],
                "total": {"spend_usd": f"{total[0]:.2f}", "calls": total[1], "tokens": total[2]},
            },
            indent=2,
        )
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(records)
        writer.writerow(total_record)
        return out.getvalue()
    table = [header, *records, total_record]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    numeric = {len(header) - 3, len(header) - 2, len(header) - 1}
    lines = [
        "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in table
    ]
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines) + "\n"


def spinner(stream: Any = sys.stderr) -> Callable[[int, int], None] | None:
    """A one-line progress count on a terminal; nothing when the output is piped or redirected."""
    if not getattr(stream, "isatty", lambda: False)():
        return None

    def show(done: int, total: int) -> None:
        stream.write(f"\rquerying Prometheus: {done}/{total} periods" + ("\n" if done == total else ""))
        stream.flush()

    return show
