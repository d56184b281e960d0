"""Pictures of the two Grafana dashboards, drawn from a real Prometheus (Grafana cannot run here).

    .venv/bin/python dashboards/pictures.py     # needs Debian's prometheus and matplotlib; writes docs/*.png

A week of backfilled history (four tenants, three models, a daily rhythm) plus a live app making
real SDK calls against the fake provider under a budgets file; Prometheus runs our rule files.
Every panel's own query (from the generated dashboard JSON, variables set to "All") is run through
Prometheus's HTTP API and drawn where the panel sits on Grafana's 24-column grid: stats as
figures, bar gauges and pies as bars, time series as lines, tables as tables. The Tempo panel is
left blank: Tempo does not run here either.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import openai
import yaml
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import start_http_server

import aimon_otel
from aimon_otel.budgets import load_budgets
from aimon_otel.budgets.rules import render_rules
from aimon_otel.testing import FakeProvider

ROOT = Path(__file__).resolve().parents[1]
BOARDS = ROOT / "dashboards" / "grafana" / "dashboards"
DOCS = ROOT / "docs"
BUDGETS = """\
timezone: Europe/Berlin
budgets:
  - {name: acme-monthly, match: {tenant_id: acme}, limit_usd: 0.004, period: month, warn_at: [0.5, 0.8], action: block}
  - {name: per-tenant-daily, for_each: tenant_id, limit_usd: 0.003, period: day}
  - {name: all-spend-30d, limit_usd: 0.02, period: {rolling: 30d}}
"""
# (tenant, provider, model): USD per day, calls per day
HISTORY = {
    ("acme", "openai", "gpt-4o"): (38.0, 2200),
    ("acme", "anthropic", "claude-sonnet-4-6"): (24.0, 800),
    ("globex", "openai", "gpt-4o-mini"): (6.5, 9000),
    ("initech", "openai", "gpt-4o"): (52.0, 3100),
    ("umbrella", "anthropic", "claude-haiku-4-5"): (4.2, 2600),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Seconds per call by model (the 50th and 95th percentile land near these), share of calls failing
# with a 429, share of input read from cache; cached input costs a tenth of plain input.
LATENCY = {"gpt-4o": 2.2, "claude-sonnet-4-6": 3.5, "gpt-4o-mini": 0.9, "claude-haiku-4-5": 1.1}
FAILED_SHARE = {"gpt-4o": 0.02, "claude-sonnet-4-6": 0.005}
CACHED_SHARE = {"claude-sonnet-4-6": 0.4, "claude-haiku-4-5": 0.25, "gpt-4o": 0.1}
# The fingerprints of two API keys (aimon.api_key.id), one per provider, and two agents of acme's.
KEY_IDS = {"openai": "3f9a0c1d2e4b", "anthropic": "a71c55e0b9d2"}
AGENTS = {("acme", "gpt-4o"): "support-bot", ("acme", "claude-sonnet-4-6"): "research-bot"}
BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def share_below(le: float, typical: float) -> float:
    """Share of calls taking at most ``le`` seconds when they take ``typical`` seconds give or take."""
    return 1.0 if le == math.inf else 1 / (1 + (typical / le) ** 4)


def backfill(directory: Path, now: float) -> None:
    """A week of 5-minute samples: each tenant's spend follows a day-time rhythm; latencies, failures,
    cache reads and an unpriced model on the same rhythm, so every panel has something to show."""
    start, step = now - 7 * 86400, 300
    families: dict[str, list[str]] = {}

    def sample(name: str, labels: str, value: float, t: int) -> None:
        families.setdefault(name, []).append(f"{name}{{{labels}}} {value:.6f} {t}")

    for (tenant, provider, model), (usd, calls) in HISTORY.items():
        labels = f'tenant_id="{tenant}",gen_ai_provider_name="{provider}",gen_ai_request_model="{model}",job="backfill"'
        labels += f',aimon_api_key_id="{KEY_IDS[provider]}"'
        if (tenant, model) in AGENTS:
            labels += f',gen_ai_agent_name="{AGENTS[(tenant, model)]}"'
        failed = FAILED_SHARE.get(model, 0.0)
        cached = CACHED_SHARE.get(model, 0.0)
        total = 0.0
        for t in range(int(start), int(now - 120), step):
            hour = (t % 86400) / 3600
            total += (1 + 0.8 * math.sin((hour - 9) / 24 * 2 * math.pi)) * step / 86400
            n = calls * total
            sample("gen_ai_usage_cost_USD_sum", labels, usd * total, t)
            sample("gen_ai_client_operation_duration_seconds_count", labels, n * (1 - failed), t)
            if failed:
                sample(
                    "gen_ai_client_operation_duration_seconds_count",
                    labels + ',error_type="RateLimitError"',
                    n * failed,
                    t,
                )
            for le in (*BUCKETS, math.inf):
                bound = "+Inf" if le == math.inf else f"{le:g}"
                share = share_below(le, LATENCY[model])
                sample("gen_ai_client_operation_duration_seconds_bucket", f'{labels},le="{bound}"', n * share, t)
                streams = n * 0.3 * share_below(le, LATENCY[model] / 4)
                sample(
                    "gen_ai_client_operation_time_to_first_chunk_seconds_bucket", f'{labels},le="{bound}"', streams, t
                )
            for kind, per_call in (("input", 1400), ("output", 350)):
                sample("gen_ai_client_token_usage_sum", f'{labels},gen_ai_token_type="{kind}"', n * per_call, t)
            if cached:
                sample("aimon_usage_tokens_total", f'{labels},aimon_token_type="cache_read"', n * 1400 * cached, t)
                sample("aimon_cost_cache_savings_USD_total", labels, usd * total * cached * 0.6, t)
            if model == "gpt-4o-mini":
                unpriced = labels.replace('"gpt-4o-mini"', '"house-model"')
                sample(
                    "aimon_pricing_unpriced_calls_total",
                    f'{unpriced},aimon_pricing_status="unknown_model"',
                    n * 0.01,
                    t,
                )
    lines: list[str] = []
    for name, samples in families.items():
        lines += [f"# TYPE {name} unknown", *samples]
    (directory / "history.om").write_text("\n".join([*lines, "# EOF"]) + "\n")
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics",
         str(directory / "history.om"), str(directory / "data")],
        check=True, capture_output=True,
    )  # fmt: skip


def live_calls(fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-pictures", max_retries=0)
    hi = [{"role": "user", "content": "hi"}]
    for tenant, model, count in (("acme", "gpt-4o", 6), ("globex", "gpt-4o-mini", 20), ("initech", "gpt-4o", 4)):
        with aimon_otel.attributes(tenant_id=tenant, feature="support"):
            for _ in range(count):
                with contextlib.suppress(aimon_otel.BudgetExceeded):  # acme's block budget refuses some
                    client.chat.completions.create(model=model, messages=hi)
    with aimon_otel.attributes(tenant_id="acme", feature="search"):
        list(client.chat.completions.create(model="gpt-4o-mini", messages=hi, stream=True))


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}?{urllib.parse.urlencode(params)}", timeout=30) as answer:
            return json.loads(answer.read())["data"]


def substitute(expr: str, window: str) -> str:
    seconds = str(int(window[:-1]) * {"m": 60, "h": 3600, "d": 86400}[window[-1]])
    expr = expr.replace("$__rate_interval", "15m").replace("$__range_s", seconds).replace("$__range", window)
    return re.sub(r"\$\{?\w+(?::\w+)?\}?", ".*", expr)


def label(metric: dict[str, str], legend: str) -> str:
    if legend:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), "-"), legend)
    return ", ".join(f"{v}" for k, v in metric.items() if k != "__name__") or "total"


def money(value: float, unit: str) -> str:
    if unit == "currencyUSD":
        return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"
    if unit == "percentunit":
        return f"{value:.1%}"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.2f}"


def draw(board_path: Path, prometheus: Prometheus, window: str, out: Path) -> None:
    board = json.loads(board_path.read_text())
    panels = board["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels) + 2  # two rows for the title
    figure = plt.figure(figsize=(24, rows * 0.55))
    figure.suptitle(
        board["title"] + "  (drawn from a real Prometheus; Grafana renders the same queries)", fontsize=16, y=0.995
    )
    now = time.time()
    for panel in panels:
        grid = panel["gridPos"]
        axes = figure.add_axes(
            (
                grid["x"] / 24 + 0.02,
                1 - (grid["y"] + 2 + grid["h"]) / rows + 0.01,
                grid["w"] / 24 - 0.03,
                grid["h"] / rows - 0.03,
            )
        )
        axes.set_title(panel["title"], fontsize=10, loc="left")
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        targets = [t for t in panel.get("targets", []) if "expr" in t]
        if not targets:
            axes.text(0.5, 0.5, "Tempo: not run here", ha="center", va="center", color="grey")
            axes.set_axis_off()
            continue
        try:
            if panel["type"] == "timeseries":
                daily = panel.get("interval") == "1d"
                days = 7 if window == "7d" or daily else 1
                for target in targets:
                    data = prometheus.get("/api/v1/query_range", query=substitute(target["expr"], window),
                                          start=f"{now - 86400 * days:.0f}", end=f"{now:.0f}",
                                          step="86400" if daily else "900")  # fmt: skip
                    for series in data["result"][:8]:
                        xs = [(float(v[0]) - now) / 3600 for v in series["values"]]
                        ys = [float(v[1]) for v in series["values"]]
                        name = label(series["metric"], target.get("legendFormat", ""))
                        if daily:
                            axes.bar(xs, ys, width=18, label=name, color="#3274d9")
                        else:
                            axes.plot(xs, ys, label=name)
                if axes.get_legend_handles_labels()[0]:
                    axes.legend(fontsize=7, loc="upper left")
                axes.set_xlabel("hours ago", fontsize=7)
                axes.tick_params(labelsize=7)
                continue
            results = [
                (target, prometheus.get("/api/v1/query", query=substitute(target["expr"], window))["result"])
                for target in targets
            ]
            if panel["type"] == "stat":
                value = float(results[0][1][0]["value"][1]) if results[0][1] else float("nan")
                axes.text(
                    0.5,
                    0.45,
                    "No data" if math.isnan(value) else money(value, unit),
                    ha="center",
                    va="center",
                    fontsize=22,
                )
                axes.set_axis_off()
            elif panel["type"] == "table":
                cells = []
                for target, result in results:
                    for sample in result[:8]:
                        name = label(sample["metric"], "")
                        cells.append(
                            [target.get("legendFormat", "") or "value", name[:60], f"{float(sample['value'][1]):.4g}"]
                        )
                axes.set_axis_off()
                if cells:
                    table = axes.table(cellText=cells[:14], colLabels=["column", "series", "value"], loc="upper center")
                    table.auto_set_font_size(False)
                    table.set_fontsize(7)
                else:
                    axes.text(0.5, 0.5, "No data", ha="center", va="center", color="grey")
            else:
                bars = [
                    (label(s["metric"], target.get("legendFormat", "")), float(s["value"][1]))
                    for target, result in results
                    for s in result
                    if not math.isnan(float(s["value"][1]))
                ][:12]
                bars.sort(key=lambda item: item[1])
                axes.barh([b[0][:40] for b in bars], [b[1] for b in bars], color="#3274d9")
                for index, (_, value) in enumerate(bars):
                    axes.text(value, index, " " + money(value, unit), va="center", fontsize=7)
                axes.tick_params(labelsize=7)
                axes.set_xticks([])
        except (KeyError, IndexError, ValueError) as problem:
            axes.text(0.5, 0.5, f"could not draw: {problem}", ha="center", va="center", fontsize=7, color="red")
            axes.set_axis_off()
    figure.savefig(out, dpi=60)
    plt.close(figure)
    print(f"wrote {out.relative_to(ROOT)}")


def main() -> int:
    binary = shutil.which("prometheus")
    if binary is None or shutil.which("promtool") is None:
        print("needs Debian's prometheus (apt-get install prometheus)")
        return 1
    with tempfile.TemporaryDirectory() as name, FakeProvider() as fake:
        directory = Path(name)
        now = time.time()
        backfill(directory, now)
        budgets = directory / "budgets.yaml"
        budgets.write_text(BUDGETS)
        exporter = free_port()
        start_http_server(exporter, addr="127.0.0.1")
        aimon_otel.AimonInstrumentor().instrument(
            tracer_provider=TracerProvider(),
            meter_provider=MeterProvider(metric_readers=[PrometheusMetricReader()]),
            budgets=str(budgets),
            key_salt="pictures-salt",
        )
        rules = []
        for source in (ROOT / "collector" / "rules" / "aimon-alerts.yml", None):
            loaded = yaml.safe_load(source.read_text()) if source else render_rules(load_budgets(budgets))
            for group in loaded["groups"]:
                group["interval"] = "2s"
            path = directory / f"rules-{len(rules)}.yml"
            path.write_text(yaml.safe_dump(loaded))
            rules.append(str(path))
        config = {
            "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
            "rule_files": rules,
            "scrape_configs": [{"job_name": "app", "static_configs": [{"targets": [f"127.0.0.1:{exporter}"]}]}],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        process = subprocess.Popen(
            [binary, f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            prometheus = Prometheus(f"http://127.0.0.1:{port}")
            time.sleep(5)
            live_calls(fake)
            time.sleep(12)  # scrapes and rule evaluations
            DOCS.mkdir(exist_ok=True)
            draw(BOARDS / "aimon-overview.json", prometheus, "24h", DOCS / "dashboard-overview.png")
            draw(BOARDS / "aimon-budgets.json", prometheus, "7d", DOCS / "dashboard-budgets.png")
        finally:
            process.terminate()
            process.wait(timeout=30)
            aimon_otel.AimonInstrumentor().uninstrument()
    return 0


if __name__ == "__main__":
    sys.exit(main())
