"""The billing spool (SQLite on disk) and the usage event made of a call."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from aimon_otel.billing.events import NO_USAGE, UNMAPPED, UNPRICED, UsageEvent, usage_event
from aimon_otel.billing.spool import Spool
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.usage import Usage
from aimon_otel.pricing import CostResult, PricingStatus


def rows(count: int, start: int = 0) -> list[tuple[str, str]]:
    return [(f"call-{n}", f'{{"n": {n}}}') for n in range(start, start + count)]


def test_events_leave_oldest_first_and_only_when_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_events=100)
    assert spool.put(rows(5)) == 0
    assert [event.id for event in spool.take(3, lease=60)] == ["call-0", "call-1", "call-2"]
    assert [event.id for event in spool.take(3, lease=60)] == ["call-3", "call-4"]  # the first three are leased
    assert len(spool) == 5
    spool.remove(["call-0", "call-2"])
    spool.release(["call-1", "call-3", "call-4"])
    assert [event.id for event in spool.take(10, lease=60)] == ["call-1", "call-3", "call-4"]
    assert len(spool) == 3


def test_an_id_put_twice_is_kept_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_events=100)
    spool.put(rows(3))
    spool.put(rows(4))  # call-0..2 again, and call-3
    assert [event.id for event in spool.take(10, lease=60)] == ["call-0", "call-1", "call-2", "call-3"]
    assert len(spool) == 4


def test_past_the_cap_the_oldest_are_dropped_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", max_events=10)
    assert spool.put(rows(8)) == 0
    assert spool.put(rows(5, start=8)) == 3
    assert len(spool) == 10
    assert spool.take(1, lease=60)[0].id == "call-3"


def test_a_killed_process_leaves_every_accepted_event_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    script = textwrap.dedent(
        f"""
        import os, signal
        from aimon_otel.billing.spool import Spool
        spool = Spool({str(path)!r}, max_events=10_000)
        for n in range(50):
            spool.put([(f"call-{{n}}", "{{}}")])
        spool.remove(["call-0"])
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], check=False)
    assert done.returncode == -signal.SIGKILL
    reopened = Spool(path, max_events=10_000)
    assert len(reopened) == 49
    assert [event.id for event in reopened.take(2, lease=60)] == ["call-1", "call-2"]


def test_a_cap_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Spool(tmp_path / "spool.db", max_events=0)


def invocation(usage: Usage | None) -> Invocation:
    call = Invocation(operation="chat", provider="openai", request_model="gpt-4o-mini")
    call.usage = usage
    return call


PRICED = CostResult(PricingStatus.PRICED, total=Decimal("0.000123456789"))
USAGE = Usage(input_tokens=1200, output_tokens=300, cache_read_input_tokens=1000)


def test_the_event_bills_the_exact_cost_times_the_margin() -> None:
    event = usage_event(
        "p-1", 1.5e9, invocation(USAGE), PRICED, {"tenant.id": "acme"}, lambda t: f"sub_{t}", "usd", Decimal("1.2")
    )
    assert isinstance(event, UsageEvent)
    assert event.billed == "0.0001481481468" and Decimal(event.billed) == Decimal("0.000123456789") * Decimal("1.2")
    assert event.billed_micro_usd == 148
    assert (event.customer, event.tenant, event.model) == ("sub_acme", "acme", "gpt-4o-mini")
    assert (event.input_tokens, event.output_tokens, event.cache_read_tokens) == (1200, 300, 1000)
    assert UsageEvent.from_json(event.to_json()) == event


def test_tokens_are_billed_without_margin_and_unpriced_calls_too() -> None:
    unpriced = CostResult(PricingStatus.UNKNOWN_MODEL)
    event = usage_event("p-2", 0.0, invocation(USAGE), unpriced, {}, lambda t: "default", "tokens", Decimal("3"))
    assert isinstance(event, UsageEvent) and event.billed == "1500" and event.cost_usd is None


def test_calls_that_are_not_billed_say_why() -> None:
    mapped = {"tenant.id": "acme"}
    unpriced = CostResult(PricingStatus.UNKNOWN_MODEL)
    assert usage_event("a", 0.0, invocation(USAGE), unpriced, mapped, str, "usd", Decimal(1)) == UNPRICED
    assert usage_event("b", 0.0, invocation(None), PRICED, mapped, str, "usd", Decimal(1)) == NO_USAGE
    assert usage_event("c", 0.0, invocation(USAGE), PRICED, {}, lambda t: None, "usd", Decimal(1)) == UNMAPPED


def test_micro_dollars_round_half_up() -> None:
    event = UsageEvent("x", 0.0, "c", None, "openai", None, 0, 0, 0, 0, "0.0000025", "usd", "0.0000025")
    assert event.billed_micro_usd == 3


def test_a_lease_runs_out_so_a_dead_senders_events_are_sent_by_another(tmp_path: Path) -> None:
    one, other = Spool(tmp_path / "spool.db", max_events=100), Spool(tmp_path / "spool.db", max_events=100)
    one.put(rows(4))
    assert [e.id for e in one.take(2, lease=30, now=1000.0)] == ["call-0", "call-1"]
    assert [e.id for e in other.take(10, lease=30, now=1010.0)] == ["call-2", "call-3"]  # another process
    assert other.take(10, lease=30, now=1020.0) == []
    assert [e.id for e in other.take(10, lease=30, now=1031.0)] == ["call-0", "call-1"]  # the first one died
    assert len(one) == len(other) == 4
