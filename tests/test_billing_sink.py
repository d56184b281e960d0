"""The billing sink against loopback Lago, Stripe (through the real ``stripe`` SDK) and CloudEvents intakes:
every event received once, duplicates absorbed, outages ridden out from the spool."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from aimon_otel.billing.cloudevents import CloudEventsDestination
from aimon_otel.billing.delivery import Destination
from aimon_otel.billing.lago import LagoDestination
from aimon_otel.billing.sender import BillingSink
from aimon_otel.billing.spool import Spool
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.usage import Usage
from aimon_otel.pricing import CostResult, PricingStatus
from aimon_otel.testing.billing_servers import LAGO_KEY, STRIPE_KEY, BillingServer

KINDS = ["lago", "stripe", "cloudevents"]


def destination_for(server: BillingServer) -> Destination:
    if server.kind == "lago":
        return LagoDestination(server.url, LAGO_KEY, "llm_usage")
    if server.kind == "stripe":
        pytest.importorskip("stripe")
        from aimon_otel.billing.stripe_meter import StripeMeterDestination

        return StripeMeterDestination(server.url, STRIPE_KEY, "llm_usage")
    return CloudEventsDestination(server.events_url, None, "com.example.llm.usage", "aimon-otel/test")


@pytest.fixture(params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[BillingServer]:
    with BillingServer(request.param) as running:
        yield running


def a_call(n: int) -> tuple[Invocation, CostResult, dict[str, str]]:
    invocation = Invocation(operation="chat", provider="openai", request_model="gpt-4o-mini")
    invocation.usage = Usage(input_tokens=100 + n, output_tokens=10)
    cost = CostResult(PricingStatus.PRICED, total=Decimal(100 + n) * Decimal("0.00000015") + Decimal("0.000006"))
    return invocation, cost, {"tenant.id": f"tenant-{n % 3}"}


def sink_for(server: BillingServer, tmp_path: Path, **options: Any) -> BillingSink:
    return BillingSink(
        destination_for(server),
        Spool(tmp_path / "spool.db", max_events=options.pop("max_events", 100_000)),
        lambda tenant: f"sub_{tenant}" if tenant else None,
        "usd",
        Decimal("1.25"),
        flush_interval=0.02,
        first_pause=0.05,
        longest_pause=0.2,
        **options,
    )


def wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def billed_micro_usd(server: BillingServer) -> int:
    """What the server was told, summed: Stripe's integer micro-USD, Lago's and CloudEvents' decimal USD."""
    if server.kind == "stripe":
        return sum(int(event["payload"]["value"]) for event in server.stored.values())
    data = [event["properties"] if server.kind == "lago" else event["data"] for event in server.stored.values()]
    return sum(int(Decimal(item["billed"]) * 1_000_000) for item in data)


def test_every_call_is_billed_once_with_its_exact_amount(server: BillingServer, tmp_path: Path) -> None:
    sink = sink_for(server, tmp_path)
    calls = [a_call(n) for n in range(250)]
    for call in calls:
        sink(*call)
    wait_for(lambda: len(server.stored) == 250 and len(sink.spool) == 0)
    tally = sink.spool.tally(date(2000, 1, 1), date(2100, 1, 1))  # what billing reconcile compares
    assert {tenant: events for tenant, (events, _, _) in tally.items()} == {
        "tenant-0": 84,
        "tenant-1": 83,
        "tenant-2": 83,
    }
    assert sum(cost for _, cost, _ in tally.values()) == sum(cost.total or Decimal(0) for _, cost, _ in calls)
    sink.close()
    expected = sum((cost.total or Decimal(0)) * Decimal("1.25") for _, cost, _ in calls)
    if server.kind == "stripe":  # each event rounded to a whole micro-dollar
        expected_micro = sum(
            int(((cost.total or Decimal(0)) * Decimal("1.25") * 1_000_000).to_integral_value("ROUND_HALF_UP"))
            for _, cost, _ in calls
        )
        assert billed_micro_usd(server) == expected_micro
    else:
        assert (
            sum(Decimal(e["properties" if server.kind == "lago" else "data"]["billed"]) for e in server.stored.values())
            == expected
        )
    assert sink.counts() == {"sent": 250}
    customers = {
        event.get("external_subscription_id")
        or event.get("subject")
        or event.get("payload", {}).get("stripe_customer_id")
        for event in server.stored.values()
    }
    assert customers == {"sub_tenant-0", "sub_tenant-1", "sub_tenant-2"}


def test_an_outage_is_ridden_out_from_the_spool(server: BillingServer, tmp_path: Path) -> None:
    server.mode = "down"
    sink = sink_for(server, tmp_path)
    for n in range(40):
        sink(*a_call(n))
    wait_for(lambda: len(sink.spool) == 40 and sink.counts().get("retried", 0) > 0)
    assert server.stored == {}
    server.mode = "throttled"
    time.sleep(0.3)
    server.mode = "up"
    wait_for(lambda: len(server.stored) == 40 and len(sink.spool) == 0)
    sink.close()
    assert sink.counts()["sent"] == 40


def test_a_batch_sent_again_bills_once(server: BillingServer, tmp_path: Path) -> None:
    """The answer to a batch was lost: the process restarts and sends the spooled events again."""
    first = sink_for(server, tmp_path)
    for n in range(30):
        first(*a_call(n))
    wait_for(lambda: len(server.stored) == 30)
    first.close()
    spool = Spool(tmp_path / "spool.db", max_events=1000)
    from aimon_otel.billing.events import usage_event

    resent = [
        usage_event(f"{first._process}-{n}", 0.0, *a_call(n), lambda t: f"sub_{t}", "usd", Decimal("1.25"))
        for n in range(25, 35)
    ]  # 25..29 were billed, 30..34 are new
    spool.put([(event.id, event.to_json()) for event in resent if not isinstance(event, str)])
    spool.close()
    second = sink_for(server, tmp_path)
    wait_for(lambda: len(server.stored) == 35 and len(second.spool) == 0)
    second.close()
    assert len(server.stored) == 35
    if server.kind == "cloudevents":  # the intake deduplicates silently: all ten look sent
        assert second.counts() == {"sent": 10}
    else:  # Lago refuses the whole batch for its duplicates: the new five go again (retried), then sent
        counts = second.counts()
        assert (counts["sent"], counts["duplicate"]) == (5, 5)
        assert counts.get("retried", 0) == (5 if server.kind == "lago" else 0)


def test_unmapped_unpriced_and_empty_calls_are_counted_not_sent(tmp_path: Path) -> None:
    with BillingServer("lago") as server:
        sink = BillingSink(
            LagoDestination(server.url, LAGO_KEY, "llm_usage"),
            Spool(tmp_path / "spool.db", max_events=1000),
            lambda tenant: f"sub_{tenant}" if tenant else None,
            "usd",
            Decimal(1),
            flush_interval=0.02,
        )
        invocation, cost, _ = a_call(1)
        sink(invocation, cost, {})  # no tenant, no default customer
        sink(invocation, CostResult(PricingStatus.UNKNOWN_MODEL), {"tenant.id": "a"})
        empty = Invocation(operation="chat", provider="openai", request_model="gpt-4o-mini")
        sink(empty, CostResult(PricingStatus.NO_USAGE), {"tenant.id": "a"})
        sink(invocation, cost, {"tenant.id": "a"})
        wait_for(lambda: len(server.stored) == 1)
        sink.close()
    assert sink.counts() == {"unmapped": 1, "unpriced": 1, "no_usage": 1, "sent": 1}


def test_events_refused_for_good_are_dropped_and_the_rest_sent(tmp_path: Path) -> None:
    with BillingServer("lago", known_customers={"sub_tenant-0", "sub_tenant-1"}) as server:
        sink = sink_for(server, tmp_path)
        for n in range(9):
            sink(*a_call(n))
        wait_for(lambda: len(server.stored) == 6 and len(sink.spool) == 0)
        sink.close()
    assert len(server.stored) == 6 and sink.counts() == {"rejected": 3, "retried": 6, "sent": 6}


def test_past_the_spool_cap_the_oldest_are_dropped_and_counted(tmp_path: Path) -> None:
    with BillingServer("lago") as server:
        server.mode = "down"
        sink = sink_for(server, tmp_path, max_events=10)
        for n in range(25):
            sink(*a_call(n))
        wait_for(lambda: sink.counts().get("dropped", 0) == 15)
        server.mode = "up"
        wait_for(lambda: len(server.stored) == 10)
        sink.close()
    assert sorted(int(i.rsplit("-", 1)[1]) for i in server.stored) == list(range(15, 25))


def test_processes_sharing_a_spool_never_send_the_same_batch(tmp_path: Path) -> None:
    with BillingServer("lago") as server:
        sinks = [sink_for(server, tmp_path) for _ in range(3)]  # one spool file, three senders (app workers)
        for n in range(600):
            sinks[n % 3](*a_call(n))
        wait_for(lambda: len(server.stored) == 600 and len(sinks[0].spool) == 0)
        for sink in sinks:
            sink.close()
    assert server.duplicates_answered == 0
    assert sum(sink.counts().get("sent", 0) for sink in sinks) == 600
