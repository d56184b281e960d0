"""End to end against a real Prometheus: instrumented SDK calls -> Prometheus exporter -> scrape,
plus backfilled history (promtool tsdb create-blocks-from openmetrics) for day/week/month windows;
then every dashboard query and every alert expression runs through Prometheus's HTTP API."""

from __future__ import annotations

import calendar
import json
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anthropic
import openai
import pytest
import yaml
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import start_http_server

import aimon_otel
from aimon_otel import AimonInstrumentor
from aimon_otel.budgets import load_budgets
from aimon_otel.budgets.rules import render_rules
from aimon_otel.testing import FakeProvider
from aimon_otel.testing.balance_servers import KEY as BALANCE_KEY
from aimon_otel.testing.balance_servers import BalanceServer
from aimon_otel.testing.openai_wire import SCENARIO_HEADER
from tests.conftest import API_KEY
from tests.tools import require

ROOT = Path(__file__).resolve().parents[1]
KEY_SALT = "e2e-deployment-salt"
MESSAGES = [{"role": "user", "content": "hi"}]
# Backfilled spend over the last day (USD).
HISTORY = {
    ("acme", "anthropic"): 45.0,
    ("globex", "openai"): 42.0,
    ("initech", "openai"): 120.0,
    ("umbrella", "openai"): 10.0,
}
# ... and the calls and tokens (input, output) behind it, per day; none failed.
CALLS_PER_DAY = {
    ("acme", "anthropic"): 900.0,
    ("globex", "openai"): 1400.0,
    ("initech", "openai"): 2400.0,
    ("umbrella", "openai"): 500.0,
}
TOKENS_PER_DAY = {key: (calls * 1500.0, calls * 300.0) for key, calls in CALLS_PER_DAY.items()}
# ... then the rest of what the panels read: initech's rate-limited calls (globex's error rate stays 0),
# acme's cache reads and what they saved, globex's calls to a model with no price, and every call's
# duration (and every stream's first chunk) in buckets whose quantiles are worked out by hand below.
FAILED_PER_DAY = {("initech", "openai"): 120.0}
CACHE_READ_PER_DAY = {("acme", "anthropic"): TOKENS_PER_DAY[("acme", "anthropic")][0] * 0.25}
SAVINGS_PER_DAY = {("acme", "anthropic"): 4.5}
UNPRICED_PER_DAY = {("globex", "openai"): 30.0}
DURATION_SHARE = {"0.5": 0.2, "1": 0.6, "2.5": 0.9, "5": 1.0, "+Inf": 1.0}
FIRST_CHUNK_SHARE = {"0.25": 0.5, "0.5": 0.8, "1": 1.0, "+Inf": 1.0}
STREAMS_PER_DAY = {key: calls / 2 for key, calls in CALLS_PER_DAY.items()}
# The guard's budgets for the live calls (its gauges feed the budget rules rendered from this file).
# acme spends 3 x $0.000033 + $0.00055 + $0.00082 = $0.001469 a round, two rounds: $0.002938.
BUDGETS = """\
timezone: Europe/Berlin
budgets:
  - {name: acme-month, match: {tenant_id: acme}, limit_usd: 0.0025, period: month, warn_at: [0.5], action: block}
  - {name: per-tenant-day, for_each: tenant_id, limit_usd: 0.0028, period: day, plans: {pro: 7}}
  - {name: globex-tokens, match: {tenant_id: globex}, limit_tokens: 1000000, period: week}
  - {name: acme-credits, match: {tenant_id: acme}, for_each: tenant_id, credits: true, warn_below_usd: [1], action: alert}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def backfill(directory: Path, now: float) -> None:
    """Ten-minute samples of the cost, call and token counters for the last 30 days, rising only in the last day."""
    step = 600
    lines: list[str] = []

    def family(name: str, per_day: dict[tuple[str, str], float], extra: str = "") -> None:
        for (tenant, provider), daily in per_day.items():
            labels = f'tenant_id="{tenant}",gen_ai_provider_name="{provider}",gen_ai_request_model="backfilled"{extra}'
            for t in range(int(now - 30 * 86400), int(now - 60), step):
                value = max(0.0, (t - (now - 86400 - 3600)) / 86400 * daily) if t > now - 86400 - 3600 else 0.0
                lines.append(f"{name}{{{labels}}} {value:.9f} {t}")

    lines.append("# TYPE gen_ai_usage_cost_USD_sum unknown")
    family("gen_ai_usage_cost_USD_sum", HISTORY)
    lines.append("# TYPE gen_ai_client_operation_duration_seconds_count unknown")
    family("gen_ai_client_operation_duration_seconds_count", CALLS_PER_DAY)
    lines.append("# TYPE gen_ai_client_token_usage_sum unknown")
    family("gen_ai_client_token_usage_sum", {k: v[0] for k, v in TOKENS_PER_DAY.items()}, ',gen_ai_token_type="input"')
    family("gen_ai_client_token_usage_sum", {k: v[1] for k, v in TOKENS_PER_DAY.items()}, ',gen_ai_token_type="output"')
    family("gen_ai_client_operation_duration_seconds_count", FAILED_PER_DAY, ',error_type="RateLimitError"')
    lines.append("# TYPE gen_ai_client_operation_duration_seconds_bucket unknown")
    for le, share in DURATION_SHARE.items():
        ok = {k: v * share for k, v in CALLS_PER_DAY.items()}
        family("gen_ai_client_operation_duration_seconds_bucket", ok, f',le="{le}"')
        failed = {k: v * share for k, v in FAILED_PER_DAY.items()}
        family("gen_ai_client_operation_duration_seconds_bucket", failed, f',error_type="RateLimitError",le="{le}"')
    lines.append("# TYPE gen_ai_client_operation_time_to_first_chunk_seconds_bucket unknown")
    for le, share in FIRST_CHUNK_SHARE.items():
        streams = {k: v * share for k, v in STREAMS_PER_DAY.items()}
        family("gen_ai_client_operation_time_to_first_chunk_seconds_bucket", streams, f',le="{le}"')
    lines.append("# TYPE aimon_usage_tokens_total unknown")
    family("aimon_usage_tokens_total", CACHE_READ_PER_DAY, ',aimon_token_type="cache_read"')
    lines.append("# TYPE aimon_cost_cache_savings_USD_total unknown")
    family("aimon_cost_cache_savings_USD_total", SAVINGS_PER_DAY)
    lines.append("# TYPE aimon_pricing_unpriced_calls_total unknown")
    family("aimon_pricing_unpriced_calls_total", UNPRICED_PER_DAY, ',aimon_pricing_status="unknown_model"')
    lines.append("# EOF")
    source = directory / "history.om"
    source.write_text("\n".join(lines) + "\n")
    data = directory / "data"
    result = subprocess.run(
        [require("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def rule_files(directory: Path, budgets: Path) -> list[str]:
    """Our alert rules and the budget rules for ``budgets``, evaluated every second so the test need not wait."""
    paths = []
    for source in [ROOT / "collector" / "rules" / "aimon-alerts.yml", budgets]:
        rules = render_rules(load_budgets(budgets)) if source == budgets else yaml.safe_load(source.read_text())
        for group in rules["groups"]:
            group["interval"] = "1s"
        target = directory / f"{source.stem}.yml"
        target.write_text(yaml.safe_dump(rules))
        paths.append(str(target))
    return paths


class Prometheus:
    def __init__(self, port: int, backfilled_at: float = 0.0) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.backfilled_at = backfilled_at
        """The ``now`` the history was written for: its last sample is the last 10-minute step before it."""

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=30) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        return list(self.get("/api/v1/query", **params)["result"])


def make_calls(fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)
    claude = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key=API_KEY, max_retries=0)
    with aimon_otel.attributes(tenant_id="acme", user_id="alice", feature="support_reply"):
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        with aimon_otel.attributes(agent="support-bot"):
            claude.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES)
    with aimon_otel.attributes(tenant_id="globex", feature="search"):
        client.embeddings.create(model="text-embedding-3-small", input="hi")
        client.chat.completions.create(model="house-model-unpriced", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers={SCENARIO_HEADER: "error-429"}
            )


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, fake: FakeProvider) -> Iterator[Prometheus]:
    binary = require("prometheus")
    directory = tmp_path_factory.mktemp("prometheus")
    now = time.time()
    backfill(directory, now)
    budgets = directory / "budgets.yaml"
    budgets.write_text(BUDGETS)

    exporter_port = free_port()
    start_http_server(exporter_port, addr="127.0.0.1")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": rule_files(directory, budgets),
        "scrape_configs": [{"job_name": "demo-app", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    instrumentor = AimonInstrumentor()
    balances = BalanceServer().__enter__()  # the overview's "Provider balances": OpenRouter's, read by the poller
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("OPENROUTER_API_KEY", BALANCE_KEY)
    monkeypatch.setenv("AIMON_BALANCE_URL_OPENROUTER", balances.url)
    instrumentor.instrument(
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider(metric_readers=[PrometheusMetricReader()]),
        metrics_include_user=True,
        budgets=str(budgets),
        key_salt=KEY_SALT,
        provider_balances="openrouter",
    )
    try:
        aimon_otel.add_credits("acme-credits", key="acme", usd="0.5", reference="e2e-pack")  # a $0.50 pack
        make_calls(fake)
        port = free_port()
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=60d",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(directory / "prometheus.log").open("w"),
        )
        try:
            server = Prometheus(port, backfilled_at=now)
            wait_for(server, directory, minimum_scrapes=3)
            # A second round once Prometheus has seen the counters, so increase() and rate() have something to measure.
            seen = scrape_count(server)
            make_calls(fake)
            wait_for(server, directory, minimum_scrapes=seen + 3)
            yield server
        finally:
            process.terminate()  # stopped by its PID
            process.wait(timeout=30)
    finally:
        instrumentor.uninstrument()
        balances.__exit__(None, None, None)
        monkeypatch.undo()


def scrape_count(server: Prometheus) -> float:
    scrapes = server.query('count_over_time(gen_ai_client_operation_duration_seconds_count{job="demo-app"}[10m])')
    return min((float(s["value"][1]) for s in scrapes), default=0.0)


def wait_for(server: Prometheus, directory: Path, minimum_scrapes: float) -> None:
    """Until Prometheus answers, has scraped enough times and has evaluated the budget rules."""
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if scrape_count(server) >= minimum_scrapes and server.query("budget:aimon_budget_usage:ratio"):
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(
        "Prometheus did not scrape and evaluate in time:\n" + (directory / "prometheus.log").read_text()[-3000:]
    )


def substitute(expr: str) -> str:
    expr = expr.replace("$__rate_interval", "1m").replace("$__range_s", "3600").replace("$__range", "1h")
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def dashboard_queries() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted((ROOT / "dashboards" / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                if "expr" in target:
                    found.append((board["uid"], panel["title"], target["expr"]))
    return found


def test_live_metrics_are_scraped_with_exact_values(prometheus: Prometheus) -> None:
    tokens = prometheus.query(
        'sum by (gen_ai_token_type) (gen_ai_client_token_usage_sum{job="demo-app", tenant_id="acme"})'
    )
    # acme: 4 OpenAI chats (120 in / 30 out each) and 1 Anthropic message (600 in / 50 out)
    # ... twice: make_calls ran before and after Prometheus first scraped
    assert {s["metric"]["gen_ai_token_type"]: float(s["value"][1]) for s in tokens} == {
        "input": 2160.0,
        "output": 340.0,
    }
    parts = prometheus.query('sum by (aimon_token_type) (aimon_usage_tokens_total{job="demo-app", tenant_id="acme"})')
    assert {s["metric"]["aimon_token_type"]: float(s["value"][1]) for s in parts} == {
        "cache_read": 720.0,  # 4 x 40 + 200 per round
        "cache_write": 600.0,  # 300 per round (Anthropic)
        "reasoning": 80.0,  # 4 x 10 per round
    }
    cost = prometheus.query('sum(gen_ai_usage_cost_USD_sum{job="demo-app", tenant_id="acme"})')
    # 2 x (3 x gpt-4o-mini 0.000033 + gpt-4o 0.00055 + claude-haiku-4-5 0.00082)
    assert float(cost[0]["value"][1]) == pytest.approx(2 * (3 * 0.000033 + 0.00055 + 0.00082), rel=1e-9)


def test_the_price_data_date_is_scraped_under_the_name_the_alert_reads(prometheus: Prometheus) -> None:
    from importlib.metadata import version

    from aimon_otel.pricing.freshness import GENAI_PRICES_RELEASED

    installed = version("genai-prices")
    released = GENAI_PRICES_RELEASED[installed]
    found = prometheus.query('aimon_pricing_data_timestamp_seconds{job="demo-app"}')
    assert [(s["metric"]["aimon_pricing_source"], s["metric"]["aimon_pricing_version"]) for s in found] == [
        ("genai-prices", installed)
    ]
    assert float(found[0]["value"][1]) == datetime(released.year, released.month, released.day, tzinfo=UTC).timestamp()


def last_backfilled_sample(now: float) -> float:
    return float(list(range(int(now - 30 * 86400), int(now - 60), 600))[-1])


PER_HOUR = {key: per_day / 24 for key, per_day in HISTORY.items()}
ALL_CALLS = sum(CALLS_PER_DAY.values()) + sum(FAILED_PER_DAY.values())
# What each spend panel must show for the backfilled history alone (model "backfilled"), over the hour
# ending at its last sample. The history rises linearly, so increase() and rate() are exact on it.
PANEL_FIGURES: dict[str, Any] = {
    "Spend": {(): sum(PER_HOUR.values())},
    "30-day projection": {(): sum(PER_HOUR.values()) * 24 * 30},
    "Spend by provider": {
        ("anthropic",): PER_HOUR[("acme", "anthropic")],
        ("openai",): sum(v for (_, provider), v in PER_HOUR.items() if provider == "openai"),
    },
    "Spend over time by provider": {
        ("anthropic",): PER_HOUR[("acme", "anthropic")],
        ("openai",): sum(v for (_, provider), v in PER_HOUR.items() if provider == "openai"),
    },
    "Top models by spend": {("backfilled",): sum(PER_HOUR.values())},
    "Spend by tenant": {(tenant,): v for (tenant, _), v in PER_HOUR.items()},
    "Spend by feature": {(): sum(PER_HOUR.values())},  # the history has no feature label
    "Spend by user": {},  # nor users: the panel must show nothing rather than a blank user
    "Burn rate by tenant": {(tenant,): v * 24 for (tenant, _), v in PER_HOUR.items()},
    "Projected end-of-month spend": "per day x days in the month",
    # calls, tokens and the ratios built on them, on the same history
    "Requests": {(): ALL_CALLS / 24},
    "Tokens": {(): sum(i + o for i, o in TOKENS_PER_DAY.values()) / 24},
    "Error rate": {(): sum(FAILED_PER_DAY.values()) / ALL_CALLS},
    "Errors by type": {("RateLimitError",): sum(FAILED_PER_DAY.values()) / 86400},
    "Requests over time by model": {("backfilled",): ALL_CALLS / 86400},
    "Cost per request by model": {("backfilled",): sum(HISTORY.values()) / ALL_CALLS},
    "Cost per 1k tokens by model": {
        ("backfilled",): sum(HISTORY.values()) * 1000 / sum(i + o for i, o in TOKENS_PER_DAY.values())
    },
    "Spend per day": {(): sum(HISTORY.values())},  # the history's one day of spend
    "Token mix": {
        ("input",): sum(i for i, _ in TOKENS_PER_DAY.values()) / 24,
        ("output",): sum(o for _, o in TOKENS_PER_DAY.values()) / 24,
        ("cache_read",): sum(CACHE_READ_PER_DAY.values()) / 24,
    },
    "Cache hit ratio": {(): sum(CACHE_READ_PER_DAY.values()) / sum(i for i, _ in TOKENS_PER_DAY.values())},
    "Cache savings": {(): sum(SAVINGS_PER_DAY.values()) / 24},
    "Unpriced calls": {("unknown_model", "openai", "backfilled"): sum(UNPRICED_PER_DAY.values()) / 24},
    # Durations: 20% up to 0.5 s, 60% to 1 s, 90% to 2.5 s, all by 5 s: the 95th percentile lies halfway
    # through (2.5, 5]: 3.75 s. First chunks: 50% by 0.25 s, 80% by 0.5, all by 1: p50 0.25 s, p95 0.875 s.
    "p95 latency": {(): 3.75},
    "p95 latency by model": {("backfilled",): 3.75},
    "Time to first chunk (streams)": [{(): 0.25}, {(): 0.875}],
}


def panel_values(result: list[dict[str, Any]]) -> dict[tuple[str, ...], float]:
    return {tuple(sample["metric"].values()): float(sample["value"][1]) for sample in result}


@pytest.mark.parametrize("title", sorted(PANEL_FIGURES))
def test_panels_show_the_backfilled_figures_exactly(prometheus: Prometheus, title: str) -> None:
    """Every panel on the history, all variables "All" (the model: the history's), against figures worked
    out by hand from what was backfilled."""
    at = last_backfilled_sample(prometheus.backfilled_at)
    expected = PANEL_FIGURES[title]
    if title == "Projected end-of-month spend":
        when = datetime.fromtimestamp(at, UTC)
        days = calendar.monthrange(when.year, when.month)[1]
        expected = {(tenant,): v * 24 * days for (tenant, _), v in PER_HOUR.items()}
    assert_panel(prometheus, title, expected, at, {})


ONE_TENANT = {  # the same panels with the tenant variable set to one value, globex (openai only)
    "Spend": {(): PER_HOUR[("globex", "openai")]},
    "Spend by provider": {("openai",): PER_HOUR[("globex", "openai")]},
    "Spend by tenant": {("globex",): PER_HOUR[("globex", "openai")]},
    "Top models by spend": {("backfilled",): PER_HOUR[("globex", "openai")]},
    "Spend per day": {(): HISTORY[("globex", "openai")]},
    "Requests": {(): CALLS_PER_DAY[("globex", "openai")] / 24},
    "Requests over time by model": {("backfilled",): CALLS_PER_DAY[("globex", "openai")] / 86400},
    "Tokens": {(): sum(TOKENS_PER_DAY[("globex", "openai")]) / 24},
    "Token mix": {
        ("input",): TOKENS_PER_DAY[("globex", "openai")][0] / 24,
        ("output",): TOKENS_PER_DAY[("globex", "openai")][1] / 24,
    },
    "Cost per request by model": {("backfilled",): HISTORY[("globex", "openai")] / CALLS_PER_DAY[("globex", "openai")]},
    "Error rate": {(): 0.0},  # 0%, not "No data": nothing of globex's failed
    "Errors by type": {},
    "Cache hit ratio": {(): 0.0},  # no cache reads: 0%, not "No data"
    "Cache savings": {(): 0.0},
    "Unpriced calls": {("unknown_model", "openai", "backfilled"): UNPRICED_PER_DAY[("globex", "openai")] / 24},
    "p95 latency": {(): 3.75},
}


@pytest.mark.parametrize("title", sorted(ONE_TENANT))
def test_panels_with_one_tenant_chosen_show_only_its_figures(prometheus: Prometheus, title: str) -> None:
    at = last_backfilled_sample(prometheus.backfilled_at)
    assert_panel(prometheus, title, ONE_TENANT[title], at, {"tenant": "globex"})


def assert_panel(prometheus: Prometheus, title: str, expected: Any, at: float | None, chosen: dict[str, str]) -> None:
    """The panel's queries, with ``chosen`` variables set and the rest "All", give ``expected``: one mapping
    of series to figures for the panel (however many queries give it), or one per query."""
    exprs = [e for _, t, e in dashboard_queries() if t == title]
    results = [panel_values(prometheus.query(choose(expr, chosen), at=at)) for expr in exprs]
    if isinstance(expected, dict):
        merged: dict[tuple[str, ...], float] = {}
        for result in results:
            merged.update(result)
        results, expected = [merged], [expected]
    for got, figures in zip(results, expected, strict=True):
        assert got.keys() == figures.keys(), (title, got)
        for key, value in figures.items():
            assert got[key] == pytest.approx(value, rel=1e-6), (title, key)


def choose(expr: str, chosen: dict[str, str]) -> str:
    """A panel's query on the backfilled history (the model variable set to its model unless chosen)."""
    for name, value in {"model": "backfilled", **chosen}.items():
        expr = expr.replace(f'"${name}"', f'"{value}"')
    return substitute(expr.replace("$__rate_interval", "30m"))


@pytest.mark.parametrize(("board", "title", "expr"), dashboard_queries(), ids=lambda v: v if len(v) < 40 else None)
def test_every_dashboard_query_returns_data(prometheus: Prometheus, board: str, title: str, expr: str) -> None:
    """A smoke check that every query runs and finds our series; exact values: the panels above."""
    result = prometheus.query(substitute(expr))
    if "offset $__range" in expr and title in ("Top features", "Top users"):
        # the change against the range before: the features and users exist only in the live data,
        # which has no range before (Grafana shows an empty cell: new); the query ran, which is the check
        return
    assert result, f"{board}: {title}: no data for {substitute(expr)}"
    if "offset $__range" in expr:
        return  # a change against the range before: falls (negative) once the history stops rising
    assert any(float(sample["value"][1]) > 0 for sample in result), f"{board}: {title}: only zeros: {result}"


def test_drill_down_from_provider_to_model_to_tenant(prometheus: Prometheus) -> None:
    """Click a provider, then one of its models: each link sets a variable, and the next panel then shows
    exactly that provider's models, then that model's tenants (the live app's calls: two rounds)."""
    panels = {
        p["title"]: p
        for p in json.loads((ROOT / "dashboards/grafana/dashboards/aimon-overview.json").read_text())["panels"]
    }

    def click(title: str, labels: dict[str, str], chosen: dict[str, str]) -> dict[str, str]:
        (link,) = panels[title]["fieldConfig"]["defaults"]["links"]
        url = re.sub(r"\$\{__field\.labels\.(\w+)\}", lambda m: labels[m.group(1)], link["url"])
        assert url.startswith("/d/aimon-overview?${__url_time_range}&${datasource:queryparam}")
        kept = set(re.findall(r"\$\{(\w+):queryparam\}", url)) - {"datasource"}
        assert kept | set(re.findall(r"var-(\w+)=", url)) == {
            "service",
            "environment",
            "provider",
            "model",
            "tenant",
            "feature",
            "agent",
        }
        return {**{k: v for k, v in chosen.items() if k in kept}, **dict(re.findall(r"var-(\w+)=([^&$]+)", url))}

    def shown(title: str, chosen: dict[str, str]) -> dict[str, float]:
        (expr,) = [e for _, t, e in dashboard_queries() if t == title]
        for name, value in chosen.items():
            expr = expr.replace(f'"${name}"', f'"{value}"')
        return {"/".join(k): v for k, v in panel_values(prometheus.query(substitute(expr))).items()}

    live = {"service": "demo-app"}
    providers = shown("Spend by provider", live)
    assert providers == pytest.approx({"openai": 2 * (3 * 0.000033 + 0.00055 + 0.00000016), "anthropic": 2 * 0.00082})
    openai_only = click("Spend by provider", {"gen_ai_provider_name": "openai"}, live)
    assert openai_only == {"service": "demo-app", "provider": "openai"}
    assert shown("Top models by spend", openai_only) == pytest.approx(
        {"gpt-4o-mini": 2 * 3 * 0.000033, "gpt-4o": 2 * 0.00055, "text-embedding-3-small": 2 * 0.00000016}
    )
    one_model = click("Top models by spend", {"gen_ai_request_model": "gpt-4o"}, openai_only)
    assert one_model == {"service": "demo-app", "provider": "openai", "model": "gpt-4o"}
    assert shown("Spend by tenant", one_model) == pytest.approx({"acme": 2 * 0.00055})
    assert click("Spend by tenant", {"tenant_id": "acme"}, one_model) == {**one_model, "tenant": "acme"}


def test_spend_by_api_key_shows_each_keys_spend_under_its_fingerprint(prometheus: Prometheus) -> None:
    from aimon_otel.attribution.privacy import key_fingerprint

    (expr,) = [e for _, t, e in dashboard_queries() if t == "Spend by API key"]
    got = panel_values(prometheus.query(substitute(expr.replace('"$service"', '"demo-app"'))))
    # one key for every live call (OpenAI and Anthropic clients alike): two rounds of acme's and globex's
    assert got == pytest.approx(
        {(key_fingerprint(API_KEY, KEY_SALT),): 2 * (3 * 0.000033 + 0.00055 + 0.00082 + 0.00000016)}
    )


def test_spend_by_agent_shows_the_agents_calls_only(prometheus: Prometheus) -> None:
    (expr,) = [e for _, t, e in dashboard_queries() if t == "Spend by agent"]
    got = panel_values(prometheus.query(substitute(expr.replace('"$service"', '"demo-app"'))))
    assert got == pytest.approx({("support-bot",): 2 * 0.00082})  # acme's Claude calls, two rounds
    chosen = expr.replace('"$service"', '"demo-app"').replace('"$agent"', '"support-bot"')
    (spend,) = [e for _, t, e in dashboard_queries() if t == "Spend"]
    alone = spend.replace('"$service"', '"demo-app"').replace('"$agent"', '"support-bot"')
    assert float(prometheus.query(substitute(alone))[0]["value"][1]) == pytest.approx(2 * 0.00082)
    assert panel_values(prometheus.query(substitute(chosen))) == pytest.approx(got)


def firing_alerts(prometheus: Prometheus, until: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    deadline = time.time() + 30
    while True:
        firing = [a for a in prometheus.get("/api/v1/alerts")["alerts"] if a["state"] == "firing"]
        if until(firing) or time.time() > deadline:
            return firing
        time.sleep(0.5)


def test_budget_alerts_fire_from_the_guards_gauges(prometheus: Prometheus) -> None:
    """The app's guard exports what it counts; the rules rendered from the same budgets file alert on it."""
    spent = prometheus.query('aimon_budget_spent{job="demo-app"}')
    assert {
        (s["metric"]["aimon_budget_name"], s["metric"].get("aimon_budget_key", "")): float(s["value"][1]) for s in spent
    } == {
        ("acme-month", ""): pytest.approx(0.002938, abs=1e-12),
        ("per-tenant-day", "acme"): pytest.approx(0.002938, abs=1e-12),
        # globex a round: an embedding of 8 tokens ($0.02 per million: $0.00000016) and an unpriced
        # model's 150 tokens, which count toward a token budget but add no dollars.
        ("per-tenant-day", "globex"): pytest.approx(2 * 0.00000016, abs=1e-15),
        ("globex-tokens", ""): 2 * (8 + 150),
    }

    def budget_alerts(firing: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        return {
            (a["labels"]["alertname"], a["labels"]["aimon_budget_name"], a["labels"].get("aimon_budget_key", ""))
            for a in firing
            if a["labels"]["alertname"].startswith("LLMBudget")
        }

    expected = {
        ("LLMBudgetWarning", "acme-month", ""),
        ("LLMBudgetReached", "acme-month", ""),
        ("LLMBudgetWarning", "per-tenant-day", "acme"),  # 0.002938 of 0.0028: reached too
        ("LLMBudgetReached", "per-tenant-day", "acme"),
    }
    firing = firing_alerts(prometheus, lambda alerts: budget_alerts(alerts) >= expected)
    assert budget_alerts(firing) == expected
    (reached,) = [
        a
        for a in firing
        if a["labels"]["alertname"] == "LLMBudgetReached" and a["labels"]["aimon_budget_name"] == "acme-month"
    ]
    assert reached["annotations"]["summary"] == "LLM budget acme-month is spent: 117.5% of $0.0025 this month"
    assert reached["annotations"]["description"].startswith(
        "Spent $0.002938 of $0.0025 in the current month (Europe/Berlin); the period resets "
    )
    assert reached["annotations"]["description"].endswith("Calls matching it are refused until it resets.")
    assert ("GenAIDailySpendAbove50USD", "") in {(a["labels"]["alertname"], "") for a in firing}  # 217 USD over the day
    unpriced = [
        a for a in prometheus.get("/api/v1/alerts")["alerts"] if a["labels"]["alertname"] == "GenAIUnpricedCalls"
    ]
    # the live app's unpriced model, and the history's unpriced calls (globex, model "backfilled")
    assert sorted(a["labels"]["gen_ai_request_model"] for a in unpriced) == ["backfilled", "house-model-unpriced"]


def test_budget_board_shows_each_budget_exactly(prometheus: Prometheus) -> None:
    """The budgets table and the used bars, from the live guard's gauges: spent, limit, share, state."""
    spent = {"acme-month": 0.002938, "per-tenant-day acme": 0.002938, "per-tenant-day globex": 2 * 0.00000016}
    limit = {"acme-month": 0.0025, "per-tenant-day acme": 0.0028, "per-tenant-day globex": 0.0028}
    spent["globex-tokens"], limit["globex-tokens"] = 2 * (8 + 150), 1_000_000
    state = {"acme-month": 2, "per-tenant-day acme": 2, "per-tenant-day globex": 0, "globex-tokens": 0}
    columns = [e for b, t, e in dashboard_queries() if b == "aimon-budgets" and t == "Budgets"]
    assert len(columns) == 6  # spent, limit, used, state, resets, projected

    def figures(expr: str) -> dict[str, float]:
        found = prometheus.query(substitute(expr))
        return {
            " ".join(filter(None, (s["metric"]["aimon_budget_name"], s["metric"].get("aimon_budget_key")))): float(
                s["value"][1]
            )
            for s in found
        }

    assert figures(columns[0]) == pytest.approx(spent, abs=1e-12)
    assert figures(columns[1]) == pytest.approx(limit)
    used = {key: spent[key] / limit[key] for key in spent}
    assert figures(columns[2]) == pytest.approx(used, rel=1e-9)
    assert figures(columns[3]) == state
    berlin = datetime.now(ZoneInfo("Europe/Berlin"))
    month_end = (berlin.replace(day=28) + timedelta(days=4)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    day_end = (berlin + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert figures(columns[4])["acme-month"] == month_end.timestamp() * 1000  # Grafana's dateTime unit: ms
    assert figures(columns[4])["per-tenant-day acme"] == day_end.timestamp() * 1000
    (bars,) = [e for b, t, e in dashboard_queries() if b == "aimon-budgets" and t == "Budget used"]
    assert figures(bars) == pytest.approx(used, rel=1e-9)


def test_every_alert_expression_evaluates(prometheus: Prometheus) -> None:
    rules = prometheus.get("/api/v1/rules")["groups"]
    expressions = [
        (rule["name"], rule["query"]) for group in rules for rule in group["rules"] if rule["type"] == "alerting"
    ]
    assert len(expressions) >= 12
    results: dict[str, list[dict[str, Any]]] = {}
    for name, expr in expressions:  # budget tiers share an alert name
        results.setdefault(name, []).extend(prometheus.query(expr))
    # $217 over the day: every daily tier holds (Alertmanager lets only the critical one notify)
    assert all(results[f"GenAIDailySpendAbove{amount}USD"] for amount in (10, 25, 50))
    # The spike rule compares with the median hour that its own recorded series saw over the last
    # day; Prometheus here has recorded for seconds, so there is no median yet and no spike.
    assert results["GenAISpendSpike"] == []
    assert {r["metric"]["aimon_budget_name"] for r in results["LLMBudgetReached"]} == {"acme-month", "per-tenant-day"}


def test_live_spend_counts_the_calls_made_before_the_first_scrape(prometheus: Prometheus) -> None:
    """The app's first round of calls happened before Prometheus first scraped it: every series began with
    a value. The dashboards' and rules' spend (counted_increase) still counts it all; plain increase() does not."""
    from aimon_otel.backend.alerts import counted_increase

    live = 'gen_ai_usage_cost_USD_sum{job="demo-app"}'
    recorded_by_the_app = float(prometheus.query(f"sum({live})")[0]["value"][1])
    # two rounds; a round: acme 3 x $0.000033 + $0.00055 + $0.00082, globex an embedding of $0.00000016
    assert recorded_by_the_app == pytest.approx(2 * (3 * 0.000033 + 0.00055 + 0.00082 + 0.00000016), rel=1e-9)
    counted = float(prometheus.query(counted_increase(live, "10m"))[0]["value"][1])
    assert counted == pytest.approx(recorded_by_the_app, rel=0.01)
    plain = float(prometheus.query(f"sum(increase({live}[10m]))")[0]["value"][1])
    assert plain < 0.9 * recorded_by_the_app  # what the old panels showed


def test_top_tenants_table_ranks_and_shares_exactly(prometheus: Prometheus) -> None:
    spend, share, change = [e for _, t, e in dashboard_queries() if t == "Top tenants"]
    at = last_backfilled_sample(prometheus.backfilled_at)

    def values(expr: str) -> dict[str, float]:
        query = substitute(expr.replace('"$model"', '"backfilled"'))
        return {s["metric"]["tenant_id"]: float(s["value"][1]) for s in prometheus.query(query, at=at)}

    spent = values(spend)
    assert sorted(spent, key=spent.__getitem__, reverse=True) == ["initech", "acme", "globex", "umbrella"]
    total = sum(HISTORY.values())
    for (tenant, _), per_day in HISTORY.items():
        assert spent[tenant] == pytest.approx(per_day / 24, rel=1e-6)
        assert values(share)[tenant] == pytest.approx(per_day / total, rel=1e-6)
    # the history rises at a steady rate through this hour and the one before: no change
    assert values(change) == pytest.approx({tenant: 0.0 for tenant, _ in HISTORY}, abs=1e-6)


def test_the_remaining_panels_show_what_prometheus_and_the_guard_hold(prometheus: Prometheus) -> None:
    """Price data age, the firing-alert lists and the period-to-date series, against their sources."""
    from importlib.metadata import version

    from aimon_otel.pricing.freshness import GENAI_PRICES_RELEASED

    def only(title: str, board: str = "aimon-overview") -> str:
        (expr,) = [e for b, t, e in dashboard_queries() if t == title and b == board]
        return substitute(expr)

    released = GENAI_PRICES_RELEASED[version("genai-prices")]
    midnight = datetime(released.year, released.month, released.day, tzinfo=UTC).timestamp()
    (age,) = prometheus.query(only("Price data age"))
    assert float(age["value"][1]) == pytest.approx((float(age["value"][0]) - midnight) / 86400, abs=1e-6)
    for _ in range(10):  # an alert may turn firing between the two reads: read again until they agree
        firing = {
            (a["labels"]["alertname"], a["labels"].get("aimon_budget_name", ""))
            for a in prometheus.get("/api/v1/alerts")["alerts"]
            if a["state"] == "firing"
        }
        table = {
            (s["metric"]["alertname"], s["metric"].get("aimon_budget_name", ""))
            for s in prometheus.query(only("Firing alerts"))
        }
        if table == firing:
            break
        time.sleep(0.5)
    assert table == firing and ("LLMBudgetReached", "acme-month") in table
    budget_alerts = {
        (s["metric"]["alertname"], s["metric"]["aimon_budget_name"])
        for s in prometheus.query(only("Budget alerts firing", "aimon-budgets"))
    }
    assert budget_alerts == {pair for pair in firing if pair[0].startswith(("LLMBudget", "LLMCredits"))}
    spent_now = {
        (s["metric"]["aimon_budget_name"], s["metric"].get("aimon_budget_key", "")): float(s["value"][1])
        for s in prometheus.query(only("Spend in the current period", "aimon-budgets"))
    }
    assert spent_now[("acme-month", "")] == pytest.approx(0.002938, abs=1e-12)
    assert spent_now[("globex-tokens", "")] == 2 * (8 + 150)


def test_the_limit_gauge_follows_a_per_key_limit_set_while_the_app_runs(prometheus: Prometheus) -> None:
    """A per-key limit set in the running app reaches Prometheus as the budget's limit, and the budget rules'
    usage ratio follows, with no new rule and no restart; cleared, the file's limit is back; an upgrade to a
    plan likewise."""
    selector = 'budget:aimon_budget_limit:max{aimon_budget_name="per-tenant-day", aimon_budget_key="acme"}'

    def limit_seen(expected: float) -> bool:
        deadline = time.time() + 20
        while time.time() < deadline:
            found = prometheus.query(selector)
            if found and float(found[0]["value"][1]) == pytest.approx(expected):
                return True
            time.sleep(0.5)
        return False

    assert limit_seen(0.0028)
    aimon_otel.set_limit("per-tenant-day", key="acme", limit_usd=5, reason="e2e")
    try:
        assert limit_seen(5.0)
        (limits,) = [e for b, t, e in dashboard_queries() if b == "aimon-budgets" and t == "Limits in force"]
        shown = {
            (
                s["metric"]["aimon_budget_name"],
                s["metric"].get("aimon_budget_key", ""),
                s["metric"]["aimon_budget_limit_source"],
            )
            for s in prometheus.query(substitute(limits))
        }
        assert ("per-tenant-day", "acme", "set") in shown
        ratio = prometheus.query(
            'budget:aimon_budget_usage:ratio{aimon_budget_name="per-tenant-day", aimon_budget_key="acme"}'
        )
        assert float(ratio[0]["value"][1]) < 0.01
    finally:
        aimon_otel.clear_limit("per-tenant-day", key="acme")
    assert limit_seen(0.0028)
    aimon_otel.set_plan(tenant_id="acme", plan="pro")  # an upgrade: the plan's limit, the same series
    try:
        assert limit_seen(7.0)
    finally:
        aimon_otel.set_plan(tenant_id="acme", plan=None)
    assert limit_seen(0.0028)


def test_a_credit_balance_is_exported_alerts_and_shows_on_the_board(prometheus: Prometheus) -> None:
    """acme's $0.50 credit pack (action alert, so nothing refused) drawn by two rounds of calls: the balance
    gauge, the low-balance alert rendered from the file (under $1; not used up), the board's balance bars."""
    balance = {
        (s["metric"]["aimon_budget_name"], s["metric"]["aimon_budget_key"]): float(s["value"][1])
        for s in prometheus.query('aimon_budget_balance_USD{job="demo-app"}')
    }
    assert balance == {("acme-credits", "acme"): pytest.approx(0.5 - 0.002938, abs=1e-12)}
    wanted = {("LLMCreditsLow", "acme-credits", "acme")}

    def credit_alerts(alerts: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        return {
            (a["labels"]["alertname"], a["labels"]["aimon_budget_name"], a["labels"]["aimon_budget_key"])
            for a in alerts
            if a["labels"]["alertname"].startswith("LLMCredits")
        }

    firing = firing_alerts(prometheus, lambda alerts: credit_alerts(alerts) >= wanted)
    assert credit_alerts(firing) == wanted
    (low,) = [a for a in firing if a["labels"]["alertname"] == "LLMCreditsLow"]
    assert low["annotations"]["summary"] == "LLM credits acme-credits for acme are low: $0.50 left"
    (expr,) = [e for b, t, e in dashboard_queries() if b == "aimon-budgets" and t == "Credit balances"]
    shown = {
        (s["metric"]["aimon_budget_name"], s["metric"]["aimon_budget_key"]): float(s["value"][1])
        for s in prometheus.query(substitute(expr))
    }
    assert shown == {("acme-credits", "acme"): pytest.approx(0.5 - 0.002938, abs=1e-12)}
    (limits,) = [e for b, t, e in dashboard_queries() if b == "aimon-budgets" and t == "Limits in force"]
    sources = {
        (s["metric"]["aimon_budget_name"], s["metric"].get("aimon_budget_key", "")): s["metric"][
            "aimon_budget_limit_source"
        ]
        for s in prometheus.query(substitute(limits))
    }
    assert sources[("acme-month", "")] == "file" and ("acme-credits", "acme") not in sources
