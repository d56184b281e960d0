"""Budget alerts all the way to a mailbox and a chat webhook, on the real servers.

The app's guard (real SDK calls against the fake provider) exports its gauges; Debian's Prometheus
scrapes them and runs the rules `aimon-otel budgets render` writes; Debian's Alertmanager
(`prometheus-alertmanager` 0.25) routes with the config rendered from the same budgets file to a
local SMTP sink (aiosmtpd) and a local Slack-compatible webhook. Each server on a free loopback
port, stopped by its PID.
"""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from aiosmtpd.controller import Controller
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

import aimon_otel
from aimon_otel import AimonInstrumentor
from aimon_otel.budgets import load_budgets
from aimon_otel.budgets.rules import render_alertmanager, render_rules
from aimon_otel.testing import FakeProvider
from tests.conftest import API_KEY, MESSAGES
from tests.tools import PostSink, free_port, require

# acme: $0.0001 a month, warnings at 50% and 80%; each gpt-4o-mini call costs $0.000033.
BUDGETS = """\
timezone: Europe/Berlin
budgets:
  - {name: acme-month, match: {tenant_id: acme}, limit_usd: 0.0001, period: month, warn_at: [0.5, 0.8],
     notify: [finance]}
  - {name: globex-day, match: {tenant_id: globex}, limit_usd: 0.00005, period: day}
"""


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"

    def texts(self) -> list[str]:
        found = []
        for message in self.messages:
            parts = [part.get_content() for part in message.walk() if part.get_content_maintype() == "text"]
            found.append(str(message["Subject"]) + "\n" + "\n".join(parts))
        return found


class Webhook(PostSink):
    """The Slack-compatible receiver: Alertmanager's JSON posts to ``/hook``."""

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hook"

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body in self.received("/hook")]


def wait_for(check: Callable[[], bool], what: str, found: Callable[[], str] = lambda: "", seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; found: {found()}")


def alertmanager_config(budgets_path: Path, smtp_port: int, webhook: str) -> dict[str, Any]:
    """The repository's base config, pointed at the local sinks and timed for a test."""
    base = yaml.safe_load((Path(__file__).parents[1] / "collector" / "alertmanager.base.yml").read_text())
    base["global"] = {
        "resolve_timeout": "5m",
        "smtp_smarthost": f"127.0.0.1:{smtp_port}",
        "smtp_from": "aimon-alerts@example.test",
        "smtp_require_tls": False,
    }
    base["route"].update({"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"})
    for receiver in base["receivers"]:
        for slack in receiver.get("slack_configs", []):
            slack.pop("api_url_file")
            slack["api_url"] = webhook
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook
    return render_alertmanager(load_budgets(budgets_path), base, "alertmanager.base.yml")


@dataclass
class Stack:
    mailbox: Mailbox
    webhook: Webhook
    call: Callable[[str], None]
    """One gpt-4o-mini call ($0.000033) for the tenant given."""
    alertmanager: str

    def alerts(self, budget: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"filter": f'aimon_budget_name="{budget}"'})
        with urllib.request.urlopen(f"{self.alertmanager}/api/v2/alerts?{query}", timeout=10) as answer:
            return list(json.loads(answer.read()))


@pytest.fixture
def stack(tmp_path: Path, fake: FakeProvider) -> Iterator[Stack]:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(BUDGETS)
    mailbox, webhook = Mailbox(), Webhook()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()

    registry = CollectorRegistry()
    reader = PrometheusMetricReader()
    REGISTRY.unregister(reader._collector)  # served from a registry of this test's own
    registry.register(reader._collector)
    exporter_port = free_port()
    start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    instrumentor = AimonInstrumentor()
    instrumentor.instrument(
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider(metric_readers=[reader], shutdown_on_exit=False),
        budgets=str(budgets),
    )
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)

    def call(tenant: str) -> None:
        with aimon_otel.attributes(tenant_id=tenant):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    am_port, prom_port = free_port(), free_port()
    (tmp_path / "alertmanager.yml").write_text(
        yaml.safe_dump(alertmanager_config(budgets, smtp.port, webhook.hook_url))
    )
    rules = render_rules(load_budgets(budgets))
    for group in rules["groups"]:
        group["interval"] = "1s"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp_path / "rules.yml")],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
                "scrape_configs": [
                    {"job_name": "app", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}
                ],
            }
        )
    )
    log = (tmp_path / "servers.log").open("w")
    alertmanager = subprocess.Popen(
        [require("prometheus-alertmanager"), f"--config.file={tmp_path / 'alertmanager.yml'}",
         f"--storage.path={tmp_path / 'am'}", f"--web.listen-address=127.0.0.1:{am_port}",
         "--cluster.listen-address="],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    prometheus = subprocess.Popen(
        [require("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'prom'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield Stack(mailbox, webhook, call, f"http://127.0.0.1:{am_port}")
    finally:
        prometheus.terminate()  # stopped by their PIDs
        alertmanager.terminate()
        prometheus.wait(timeout=30)
        alertmanager.wait(timeout=30)
        instrumentor.uninstrument()
        smtp.stop()
        webhook.stop()


def test_budget_alerts_reach_the_right_receivers_once_and_inhibited_tiers_stay_quiet(stack: Stack) -> None:
    stack.call("acme")
    stack.call("acme")  # $0.000066: 66% of acme's budget, past the 50% warning
    wait_for(lambda: len(stack.mailbox.messages) >= 1, "the 50% warning's e-mail to finance")
    first = stack.mailbox.texts()[0]
    assert "acme-month" in first and "66% of $0.0001" in first and "Spent $0.000066 of $0.0001" in first
    time.sleep(6)  # three group intervals: the same firing alert is not sent again within repeat_interval
    assert len(stack.mailbox.messages) == 1, stack.mailbox.texts()

    stack.call("acme")  # $0.000099: 99%, past 80%: tier 2 fires and tier 1 is inhibited
    wait_for(lambda: len(stack.mailbox.messages) >= 2, "the 80% warning's e-mail")
    time.sleep(4)
    assert len(stack.mailbox.messages) == 2, stack.mailbox.texts()
    second = stack.mailbox.texts()[1]
    assert "Spent $0.000099 of $0.0001" in second and "99% of $0.0001" in second
    states = {a["labels"]["threshold"]: a["status"]["state"] for a in stack.alerts("acme-month")}
    assert states == {"50%": "suppressed", "80%": "active"}
    assert "80%" in second and "50%" not in second  # the inhibited tier is not in the notification

    # globex's budget has no notify: its alerts take the default route, the team chat (Slack JSON);
    # reached is critical, so on-call's webhook hears of it too. acme's never reach the chat.
    stack.call("globex")
    stack.call("globex")  # $0.000066 of $0.00005
    wait_for(
        lambda: any("globex-day" in json.dumps(body) and "attachments" in body for body in stack.webhook.bodies),
        "globex's alert in the team chat",
        lambda: json.dumps(stack.webhook.bodies)[:3000] + json.dumps(stack.alerts("globex-day"))[:2000],
    )
    chat = [attachment for body in stack.webhook.bodies for attachment in body.get("attachments", [])]
    assert any("Spent $0.000066 of $0.00005 in the current day" in attachment["text"] for attachment in chat), chat
    wait_for(lambda: any(body.get("receiver") == "on-call" for body in stack.webhook.bodies), "on-call's webhook")
    assert not any("acme-month" in json.dumps(body) for body in stack.webhook.bodies)
