"""Billing hand-off end to end: the real openai SDK against the fake provider, usage events to loopback
billing systems, whatever the trace sampler keeps; a process killed mid-outage bills every call once."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from aimon_otel import AimonConfigError, AimonInstrumentor, attributes
from aimon_otel.billing.setup import BillingSettings, billing_from_environ
from aimon_otel.config import Settings
from aimon_otel.testing import FakeProvider
from aimon_otel.testing import openai_wire as wire
from aimon_otel.testing.billing_servers import LAGO_KEY, BillingServer
from tests.conftest import API_KEY, MESSAGES

CALL_COST = calc_price(
    PriceUsage(
        input_tokens=wire.PROMPT_TOKENS, cache_read_tokens=wire.CACHED_TOKENS, output_tokens=wire.COMPLETION_TOKENS
    ),
    "gpt-4o-mini",
    provider_id="openai",
).total_price


def wait_for(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_every_call_is_billed_once_whatever_the_sampler_keeps(fake: FakeProvider, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=TraceIdRatioBased(0.1))
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    instrumentor = AimonInstrumentor()
    with BillingServer("lago") as server:
        instrumentor.instrument(
            tracer_provider=tracer_provider,
            meter_provider=MeterProvider(metric_readers=[reader]),
            billing={
                "service": "lago",
                "url": server.url,
                "api_key": LAGO_KEY,
                "metric": "llm_cost",
                "margin": "1.3",
                "default_customer": "sub_default",
                "spool": str(tmp_path / "spool.db"),
            },
        )
        try:
            client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)

            def worker(thread: int) -> None:
                with attributes(tenant_id=f"tenant-{thread}"):
                    for _ in range(500):
                        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

            threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wait_for(lambda: len(server.stored) == 4000)
        finally:
            instrumentor.uninstrument()
    assert 200 < len(exporter.get_finished_spans()) < 600  # the sampler kept about a tenth of the spans
    billed = [Decimal(event["properties"]["billed"]) for event in server.stored.values()]
    assert sum(billed) == CALL_COST * Decimal("1.3") * 4000  # to the last digit, not just the micro-dollar
    assert {event["external_subscription_id"] for event in server.stored.values()} == {f"tenant-{n}" for n in range(8)}
    assert all(event["code"] == "llm_cost" for event in server.stored.values())


APP = """
import os, signal, sys, openai
from aimon_otel import AimonInstrumentor, attributes
AimonInstrumentor().instrument(billing={{
    "service": "stripe", "url": os.environ["BILLING_URL"], "api_key": "sk_test_billing", "metric": "llm_cost",
    "spool": os.environ["SPOOL"], "customers": "identity",
}})
client = openai.OpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-test", max_retries=0)
with attributes(tenant_id="cus_acme"):
    for _ in range(int(sys.argv[1])):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}])
if sys.argv[2] == "kill":
    import time
    time.sleep({settle})  # the sender spools what it has; the billing system is down: nothing is sent
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_process_killed_during_an_outage_bills_every_call_once_after_restart(
    fake: FakeProvider, tmp_path: Path
) -> None:
    pytest.importorskip("stripe")
    spool = tmp_path / "spool.db"
    with BillingServer("stripe") as server:
        env = {**os.environ, "BILLING_URL": server.url, "SPOOL": str(spool), "OPENAI_BASE_URL": fake.openai_base_url}
        script = APP.format(settle=3.0)
        server.mode = "down"
        first = subprocess.run([sys.executable, "-c", script, "60", "kill"], env=env, check=False, timeout=120)
        assert first.returncode == -signal.SIGKILL
        assert server.stored == {} and server.requests > 0
        server.mode = "up"
        second = subprocess.run([sys.executable, "-c", script, "40", "exit"], env=env, check=True, timeout=120)
        assert second.returncode == 0
        wait_for(lambda: len(server.stored) == 100, 60)  # a batch leased when killed waits out its lease
    micro_usd = int((CALL_COST * 1_000_000).to_integral_value("ROUND_HALF_UP"))
    assert sum(int(event["payload"]["value"]) for event in server.stored.values()) == 100 * micro_usd
    assert {event["payload"]["stripe_customer_id"] for event in server.stored.values()} == {"cus_acme"}


def test_a_bad_billing_setting_in_the_environment_is_logged_and_billing_stays_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="aimon_otel"):
        settings = Settings.load({"AIMON_BILLING": "lago", "AIMON_BILLING_API_KEY": "k"})
    assert settings.billing is None
    assert "AIMON_BILLING_METRIC is required" in caplog.text and "billing stays off" in caplog.text
    with pytest.raises(AimonConfigError, match=r"AIMON_BILLING='quickbooks'.*lago"):
        Settings.load({"AIMON_BILLING": "quickbooks"}, strict=True)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"service": "lago", "metric": "m"}, "api_key"),
        ({"service": "stripe", "metric": "m", "api_key": "k", "margin": "-1"}, "positive factor"),
        ({"service": "lago", "metric": "m", "api_key": "k", "unit": "eur"}, "'usd'.*'tokens'"),
        ({"service": "cloudevents", "metric": "m"}, "intake's URL"),
        ({"service": "lago", "metric": "m", "api_key": "k", "spool_max_events": 0}, ">= 1"),
        ({"service": "lago", "metric": "m", "api_key": "k", "colour": "red"}, "unknown setting"),
    ],
)
def test_billing_settings_in_code_are_strict(given: dict[str, object], message: str) -> None:
    with pytest.raises(AimonConfigError, match=message):
        AimonInstrumentor().instrument(billing=given)


def test_the_api_key_is_read_from_its_file_and_never_shown(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("lago-secret-123\n")
    settings = billing_from_environ(
        {"AIMON_BILLING": "lago", "AIMON_BILLING_API_KEY_FILE": str(key_file), "AIMON_BILLING_METRIC": "m"}
    )
    assert isinstance(settings, BillingSettings) and settings.api_key == "lago-secret-123"
    assert "lago-secret-123" not in repr(settings) and "<hidden>" in repr(settings)


def test_a_customer_file_maps_tenants_and_the_rest_go_to_the_default(tmp_path: Path) -> None:
    from aimon_otel.billing.setup import customer_mapping

    table = tmp_path / "customers.yaml"
    table.write_text("acme: sub_001\nglobex: sub_002\n")
    settings = BillingSettings(service="lago", metric="m", customers=str(table), default_customer="sub_house")
    customer_of = customer_mapping(settings)
    assert [customer_of(t) for t in ("acme", "globex", "initech", None)] == [
        "sub_001",
        "sub_002",
        "sub_house",
        "sub_house",
    ]
    table.write_text("- not a mapping\n")
    with pytest.raises(AimonConfigError, match="flat mapping"):
        customer_mapping(settings)


def test_the_cli_shows_what_waits_in_the_spool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aimon_otel.billing.spool import Spool
    from aimon_otel.cli import main

    spool = Spool(tmp_path / "spool.db", max_events=100)
    rows = [
        ("a-1", '{"customer": "sub_1", "unit": "usd", "billed": "0.0000123", "timestamp": 1764633600.0}'),
        ("a-2", '{"customer": "sub_1", "unit": "usd", "billed": "0.0000877", "timestamp": 1764637200.0}'),
        ("a-3", '{"customer": "sub_2", "unit": "usd", "billed": "1.5", "timestamp": 1764640800.0}'),
    ]
    spool.put(rows)
    spool.close()
    assert main(["billing", "spool", "--spool", str(tmp_path / "spool.db")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"3 usage events waiting in {tmp_path / 'spool.db'}",
        "  sub_1: 2 events, $0.0001000, calls 2025-12-02 00:00:00 UTC to 2025-12-02 01:00:00 UTC",
        "  sub_2: 1 events, $1.5, calls 2025-12-02 02:00:00 UTC to 2025-12-02 02:00:00 UTC",
    ]
    assert main(["billing", "spool", "--spool", str(tmp_path / "none.db")]) == 2


def test_the_zero_code_path_bills_every_call_and_a_bad_setting_only_logs(fake: FakeProvider, tmp_path: Path) -> None:
    from tests.conftest import zero_code_environment

    app = Path(__file__).parents[1] / "examples" / "app.py"
    command = [str(Path(sys.executable).with_name("opentelemetry-instrument")), sys.executable, str(app)]
    with BillingServer("cloudevents") as server:
        env = zero_code_environment(
            fake,
            AIMON_DEMO_FAKE_PROVIDER="1",
            AIMON_BUDGETS=str(app.with_name("demo-budgets.yaml")),
            AIMON_BILLING="cloudevents",
            AIMON_BILLING_URL=server.events_url,
            AIMON_BILLING_METRIC="com.example.llm.usage",
            AIMON_BILLING_DEFAULT_CUSTOMER="house",
            AIMON_BILLING_SPOOL=str(tmp_path / "spool.db"),
        )
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        spans = [line for line in result.stdout.splitlines() if '"gen_ai.usage.cost"' in line]
        wait_for(lambda: len(server.stored) >= len(spans) > 0, 30)  # sent at exit, or at the next start
    assert {event["type"] for event in server.stored.values()} == {"com.example.llm.usage"}
    assert all(event["specversion"] == "1.0" and event["subject"] for event in server.stored.values())

    bad = subprocess.run(
        command,
        env={**env, "AIMON_BILLING": "quickbooks"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 0 and "AIMON_BILLING='quickbooks'" in bad.stderr and "billing stays off" in bad.stderr


def test_margins_per_plan_follow_the_tenants_plan(fake: FakeProvider, tmp_path: Path) -> None:
    import aimon_otel

    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "budgets:\n  - {name: monthly, for_each: tenant_id, limit_usd: 100, plans: {pro: 1000, free: 1}, "
        "period: month, action: alert}\n"
    )
    instrumentor = AimonInstrumentor()
    with BillingServer("lago") as server:
        instrumentor.instrument(
            tracer_provider=TracerProvider(),
            meter_provider=MeterProvider(),
            budgets=str(budgets),
            billing={
                "service": "lago",
                "url": server.url,
                "api_key": LAGO_KEY,
                "metric": "llm_cost",
                "margin": "pro=1.5,free=1,*=1.1",
                "spool": str(tmp_path / "spool.db"),
            },
        )
        try:
            aimon_otel.set_plan(tenant_id="acme", plan="pro")
            aimon_otel.set_plan(tenant_id="initech", plan="free")
            client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)
            for tenant in ("acme", "initech", "globex"):
                with attributes(tenant_id=tenant):
                    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            wait_for(lambda: len(server.stored) == 3)
        finally:
            instrumentor.uninstrument()
    billed = {e["external_subscription_id"]: Decimal(e["properties"]["billed"]) for e in server.stored.values()}
    assert billed == {"acme": CALL_COST * Decimal("1.5"), "initech": CALL_COST, "globex": CALL_COST * Decimal("1.1")}


def test_a_margin_per_plan_is_checked() -> None:
    from aimon_otel.billing.setup import billing_from_code

    settings = billing_from_code({"service": "lago", "metric": "m", "api_key": "k", "margin": {"pro": "1.3"}})
    assert settings is not None and settings.margin == {"pro": Decimal("1.3")}
    with pytest.raises(AimonConfigError, match=r"per plan: pro=1\.3"):
        billing_from_code({"service": "lago", "metric": "m", "api_key": "k", "margin": "pro=0,*=1"})


def test_the_billing_system_gets_the_id_the_budget_ledger_counts_the_call_under(
    fake: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aimon_otel.budgets.ledger import MemoryLedger

    counted: list[str] = []
    add = MemoryLedger.add

    def noting(self: MemoryLedger, call_id: str, *args: object, **kwargs: object) -> object:
        counted.append(call_id)
        return add(self, call_id, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(MemoryLedger, "add", noting)
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets:\n  - {name: all, limit_usd: 100, period: day, action: block}\n")
    instrumentor = AimonInstrumentor()
    with BillingServer("cloudevents") as server:
        instrumentor.instrument(
            tracer_provider=TracerProvider(),
            meter_provider=MeterProvider(),
            budgets=str(budgets),
            billing={"service": "cloudevents", "url": server.events_url, "metric": "llm", "default_customer": "c",
                     "spool": str(tmp_path / "spool.db")},
        )  # fmt: skip
        try:
            client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)
            for _ in range(5):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            wait_for(lambda: len(server.stored) == 5)
        finally:
            instrumentor.uninstrument()
    assert len(counted) == 5 and set(server.stored) == set(counted)


def test_a_billing_url_that_is_not_http_is_a_clear_error() -> None:
    with pytest.raises(AimonConfigError, match=r"AIMON_BILLING_URL: 'ftp://billing' is not an http\(s\) URL"):
        AimonInstrumentor().instrument(billing={"service": "cloudevents", "url": "ftp://billing", "metric": "m"})
