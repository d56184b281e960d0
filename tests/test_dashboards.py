"""Dashboards as code: the committed JSON is what the generator writes, and it is well formed."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "dashboards"))
generate = pytest.importorskip("generate")  # needs grafana-foundation-sdk (the test extra)
from grafana_foundation_sdk.models.dashboard import Dashboard  # noqa: E402

BOARDS = sorted((ROOT / "dashboards" / "grafana" / "dashboards").glob("*.json"))
BUILTIN_VARIABLES = {"__range", "__range_s", "__rate_interval", "__interval", "__all"}


def test_committed_files_are_generated() -> None:
    for path, text in generate.render_all().items():
        assert path.read_text() == text, f"{path} is stale: run .venv/bin/python dashboards/generate.py"


def expressions(board: dict[str, Any]) -> list[str]:
    return [t.get("expr") or t.get("query") or "" for p in board["panels"] for t in p.get("targets", [])]


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path: Path) -> None:
    board = json.loads(path.read_text())
    Dashboard.from_json(board)  # the foundation SDK's loader accepts it
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and all(ids)
    defined = {v["name"] for v in board["templating"]["list"]}
    for expr in expressions(board):
        used = set(re.findall(r"\$\{?(\w+)", expr)) - BUILTIN_VARIABLES
        assert used <= defined, (expr, used - defined)
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] in ("${datasource}", "${tempo}")
        for expr in (t.get("expr", "") for t in panel.get("targets", [])):
            # counters only through increase(...[$__range]) or rate(...[$__rate_interval]); a day for daily bars
            allowed = ("$__range", "$__rate_interval", *(("1d",) if panel["title"] == "Spend per day" else ()))
            for window in re.findall(r"(?:increase|rate)\([^\[]*\[([^\]]+)\]", expr):
                assert window in allowed, expr
            assert "otel_scope_name" not in expr  # no filter on one SDK: other tools' gen_ai_* metrics count


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.name)
def test_panels_fit_the_grid_and_do_not_overlap(path: Path) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in json.loads(path.read_text())["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, (panel["title"], grid)
        cells = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, (panel["title"], grid)
        taken |= cells


def test_uids_unique() -> None:
    uids = [json.loads(p.read_text())["uid"] for p in BOARDS]
    assert sorted(uids) == ["aimon-budgets", "aimon-overview"]


def emitted_metrics(fake: Any) -> dict[str, set[str]]:
    """Prometheus metric names and their labels as our instrumentation really exposes them."""
    import contextlib
    import os

    import anthropic
    import openai
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from prometheus_client import CollectorRegistry
    from prometheus_client.parser import text_string_to_metric_families

    import aimon_otel
    from aimon_otel.testing.balance_servers import KEY, BalanceServer
    from tests.conftest import API_KEY

    registry = CollectorRegistry()
    reader = PrometheusMetricReader()
    instrumentor = aimon_otel.AimonInstrumentor()
    balances = BalanceServer().__enter__()  # the "Provider balances" panel: a poller reading OpenRouter's
    saved = {name: os.environ.get(name) for name in ("OPENROUTER_API_KEY", "AIMON_BALANCE_URL_OPENROUTER")}
    os.environ.update(OPENROUTER_API_KEY=KEY, AIMON_BALANCE_URL_OPENROUTER=balances.url)
    instrumentor.instrument(
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider(metric_readers=[reader], shutdown_on_exit=False),
        metrics_include_user=True,  # the "Spend by user" panel is for those who opt in
        key_salt="salt",  # and "Spend by API key" for those who set AIMON_KEY_SALT
        budgets=str(ROOT / "examples" / "budgets.yaml"),  # the guard's gauges feed the budgets board
        provider_balances="openrouter",
    )
    try:
        assert instrumentor.balances is not None and instrumentor.balances.wait_for_round(1, 10)
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)
        claude = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key=API_KEY, max_retries=0)
        with aimon_otel.attributes(tenant_id="acme", user_id="alice", feature="f", agent="a"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            list(
                client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
                )
            )
            client.chat.completions.create(model="house-model", messages=[{"role": "user", "content": "hi"}])
            claude.messages.create(
                model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
            with contextlib.suppress(openai.RateLimitError):  # a failed call, so error.type exists
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "hi"}],
                    extra_headers={"x-fake-scenario": "error-429"},
                )
        aimon_otel.add_credits("prepaid-credits", key="prepaid-acme", usd=1, reference="dashboards-test")
        with aimon_otel.attributes(tenant_id="prepaid-acme"):  # a prepaid tenant: the balance gauge
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        from prometheus_client import REGISTRY, generate_latest

        # The reader registers itself in prometheus_client's global registry, which other tests serve:
        # move it to a registry of our own so nothing recorded here shows up there.
        REGISTRY.unregister(reader._collector)
        registry.register(reader._collector)
        text = generate_latest(registry).decode()
    finally:
        instrumentor.uninstrument()
        balances.__exit__(None, None, None)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def recorded_rule_names() -> set[str]:
    import yaml

    names = set()
    for path in (ROOT / "collector" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return names


# Labels Prometheus adds to every scraped series, and resource attributes promoted by the Collector.
TARGET_LABELS = {"job", "instance", "le"}
# A resource attribute the Collector turns into a label on every series (collector/otelcol.yaml:
# resource_to_telemetry_conversion, and transform/environment for deployment.environment.name);
# the in-process Prometheus exporter used here puts it on target_info only.
PROMOTED_BY_THE_COLLECTOR = {"deployment_environment"}


def test_every_metric_and_label_a_dashboard_reads_exists(fake: Any) -> None:
    emitted = emitted_metrics(fake)
    recorded = recorded_rule_names()
    for path in BOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target.get("expr")
                if not expr:
                    continue
                selectors = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
                for name, matchers in re.findall(
                    r"(?<![\w:])((?:gen_ai|aimon|budget:)[\w:]*)(?![\w:]|\s*[=!]~?)(?:\{([^}]*)\})?", selectors
                ):
                    assert name in emitted or name in recorded, f"{panel['title']}: {name} is never exposed"
                    labels = set(re.findall(r"(\w+)\s*[=!]~?", matchers or ""))
                    known = emitted.get(name, set()) | TARGET_LABELS | PROMOTED_BY_THE_COLLECTOR
                    if name.startswith("budget:"):  # recorded from the guard's gauges, by budget and key
                        known |= emitted["aimon_budget_spent"]
                    assert labels <= known, f"{panel['title']}: {name} has no label(s) {labels - known}"


def test_grafana_alerts_are_the_prometheus_alerts_and_parse(tmp_path: Path) -> None:
    """Grafana-managed copies must say what the Prometheus rules say, and be valid PromQL."""
    import subprocess

    import yaml

    from aimon_otel.backend.alerts import inline_recordings
    from tests.tools import require

    grafana = yaml.safe_load((ROOT / "dashboards/grafana/alerting-alternative/aimon-alerts.yaml").read_text())
    grafana_rules = {
        rule["title"]: next(q["model"]["expr"] for q in rule["data"] if q["datasourceUid"] == "prometheus")
        for group in grafana["groups"]
        for rule in group["rules"]
    }
    prometheus = yaml.safe_load((ROOT / "collector/rules/aimon-alerts.yml").read_text())
    prometheus_rules = {r["alert"]: r["expr"] for g in prometheus["groups"] for r in g["rules"] if "alert" in r}
    prometheus_rules = {
        name: inline_recordings(expr) for name, expr in prometheus_rules.items()
    }  # Grafana's inline them
    assert grafana_rules == prometheus_rules
    annotations = [r["annotations"] for g in grafana["groups"] for r in g["rules"]]
    assert any("$values.A.Value" in a["description"] for a in annotations)
    assert not any("$value " in text or "$value}" in text for a in annotations for text in a.values())
    as_rules = {
        "groups": [
            {
                "name": "grafana",
                "rules": [{"record": f"grafana:{i}", "expr": e} for i, e in enumerate(grafana_rules.values())],
            }
        ]
    }
    path = tmp_path / "grafana-rules.yml"
    path.write_text(yaml.safe_dump(as_rules))
    checked = subprocess.run(
        [require("promtool"), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dashboards_are_provisioned_where_compose_mounts_them() -> None:
    import yaml

    provider = yaml.safe_load((ROOT / "dashboards/grafana/provisioning/dashboards/aimon.yaml").read_text())[
        "providers"
    ][0]
    compose = yaml.safe_load((ROOT / "collector/compose.yaml").read_text())
    mounts = [m for service in compose["services"].values() for m in service.get("volumes", [])]
    (mount,) = [m for m in mounts if m.split(":")[1] == provider["options"]["path"]]
    mounted = (ROOT / "collector" / mount.split(":")[0]).resolve()
    assert sorted(p.name for p in mounted.glob("*.json")) == [p.name for p in BOARDS]
