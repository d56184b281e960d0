"""``make stack``: the demo's app with a real local Prometheus running our alert and budget rules.

Needs Debian's ``prometheus`` binary (``apt-get install prometheus``); without it, says so and
exits. Runs the example workload for a while, exported through the OpenTelemetry Prometheus
exporter, lets Prometheus scrape it and evaluate the rules, then prints spend by tenant as
PromQL sees it and the alerts that are firing, and stops Prometheus. With ``--keep`` it leaves
Prometheus running (its UI at the printed address) until you press Ctrl+C.
"""

from __future__ import annotations

import argparse
import json
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

import anthropic
import openai
import yaml
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import start_http_server

import aimon_otel
from aimon_otel import AimonInstrumentor
from aimon_otel.testing import FakeProvider

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = [{"role": "user", "content": "Summarise this ticket."}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def query(base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return list(json.loads(response.read())["data"]["result"])


def wait_ready(base: str) -> None:
    for _ in range(120):
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("Prometheus did not become ready")


def fast_rules(directory: Path) -> list[str]:
    """collector/rules/*.yml evaluated every 2 seconds (they say every minute) so a short run shows them."""
    paths = []
    for source in sorted((ROOT / "collector" / "rules").glob("*.yml")):
        rules = yaml.safe_load(source.read_text())
        for group in rules["groups"]:
            group["interval"] = "2s"
        (directory / source.name).write_text(yaml.safe_dump(rules))
        paths.append(str(directory / source.name))
    return paths


def workload(fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-demo", max_retries=0)
    claude = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="sk-ant-demo", max_retries=0)
    with aimon_otel.attributes(tenant_id="acme", feature="support_reply"):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        claude.messages.create(model="claude-sonnet-4-6", max_tokens=200, messages=MESSAGES)
    with aimon_otel.attributes(tenant_id="globex", feature="search"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        client.embeddings.create(model="text-embedding-3-small", input="query")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--keep", action="store_true", help="leave Prometheus running until Ctrl+C")
    args = parser.parse_args()
    binary = shutil.which("prometheus")
    if binary is None:
        print("prometheus is not installed (apt-get install prometheus); `make demo` needs nothing of it.")
        return 0

    exporter_port, port = free_port(), free_port()
    start_http_server(exporter_port, addr="127.0.0.1")
    AimonInstrumentor().instrument(
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider(metric_readers=[PrometheusMetricReader()]),
        budgets=str(ROOT / "examples" / "budgets.yaml"),  # the guard's gauges feed the budget rules
    )
    with tempfile.TemporaryDirectory() as directory, FakeProvider() as fake:
        config = {
            "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
            "rule_files": fast_rules(Path(directory)),
            "scrape_configs": [
                {"job_name": "aimon-demo", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}
            ],
        }
        (Path(directory) / "prometheus.yml").write_text(yaml.safe_dump(config))
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={directory}/prometheus.yml",
                f"--storage.tsdb.path={directory}/data",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        print(f"Prometheus {base} (pid {process.pid}) with collector/rules/*.yml")
        try:
            wait_ready(base)
            print(f"running the workload for {args.seconds:g}s")
            end = time.time() + args.seconds
            while time.time() < end:
                workload(fake)
                time.sleep(1)
            time.sleep(5)  # two more scrapes and a rule evaluation
            print(
                "\nSpend by tenant over the run (PromQL: sum by (tenant_id) (increase(gen_ai_usage_cost_USD_sum[5m])))"
            )
            for sample in query(base, "sum by (tenant_id) (increase(gen_ai_usage_cost_USD_sum[5m]))"):
                print(f"  {sample['metric'].get('tenant_id', '-'):<10} ${float(sample['value'][1]):.6f}")
            print("\nBudgets as the guard counts them (PromQL: budget:aimon_budget_usage:ratio)")
            for sample in query(base, "budget:aimon_budget_usage:ratio"):
                labels = sample["metric"]
                name = labels["aimon_budget_name"] + (
                    f" [{labels['aimon_budget_key']}]" if labels.get("aimon_budget_key") else ""
                )
                print(f"  {name:<32} {float(sample['value'][1]):.6%} used")
            firing = ", ".join(a["metric"]["alertname"] for a in query(base, 'ALERTS{alertstate="firing"}'))
            print(f"\nFiring alerts: {firing or 'none (spend is far below the tiers)'}")
            if args.keep:
                print(f"\nPrometheus keeps running at {base}; Ctrl+C to stop.")
                while True:
                    workload(fake)
                    time.sleep(2)
        except KeyboardInterrupt:
            pass
        finally:
            process.terminate()
            process.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
