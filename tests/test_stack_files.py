"""The collector, Prometheus and compose files, checked statically (no Collector, Grafana or Docker
engine can run here) and, for Prometheus's config, with the real promtool."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.tools import require

ROOT = Path(__file__).resolve().parents[1]
COLLECTOR = ROOT / "collector"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_collector_pipelines_use_defined_components_in_order() -> None:
    for name in ("otelcol.yaml", "otelcol.prometheus-otlp.yaml"):
        config = load(COLLECTOR / name)
        base = load(COLLECTOR / "otelcol.yaml")
        defined = {
            kind: {**base.get(kind, {}), **(config.get(kind) or {})}
            for kind in ("receivers", "processors", "exporters")
        }
        for pipeline_name, pipeline in config["service"]["pipelines"].items():
            for kind in ("receivers", "processors", "exporters"):
                for component in pipeline[kind]:
                    assert component in defined[kind], f"{name}: {pipeline_name} uses undefined {kind[:-1]} {component}"
            processors = pipeline["processors"]
            assert processors[0] == "memory_limiter" and processors[-1] == "batch", (name, pipeline_name)
    base = load(COLLECTOR / "otelcol.yaml")
    assert base["service"]["pipelines"]["traces"]["exporters"] == ["otlp/tempo"]
    assert base["service"]["pipelines"]["metrics"]["exporters"] == ["prometheusremotewrite"]
    assert "deltatocumulative" in base["service"]["pipelines"]["metrics"]["processors"]
    # the dashboards' environment variable: the label exists whichever attribute name the SDK sets
    assert "transform/environment" in base["service"]["pipelines"]["metrics"]["processors"]
    (statement,) = base["processors"]["transform/environment"]["metric_statements"][0]["statements"]
    assert 'set(attributes["deployment.environment"], attributes["deployment.environment.name"])' in statement
    assert base["exporters"]["prometheusremotewrite"]["resource_to_telemetry_conversion"]["enabled"] is True
    assert base["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317}")
    assert base["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318}")


def test_message_content_is_dropped_unless_kept() -> None:
    statements = [
        s
        for block in load(COLLECTOR / "otelcol.yaml")["processors"]["transform/drop_message_content"][
            "trace_statements"
        ]
        for s in block["statements"]
    ]
    for attribute in (
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.prompt",
        "gen_ai.completion",
    ):
        assert any(f'"{attribute}"' in s for s in statements), attribute
    assert all('"${env:AIMON_KEEP_MESSAGE_CONTENT:-false}" != "true"' in s for s in statements)


def test_every_environment_variable_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    found = set()
    for path in COLLECTOR.glob("otelcol*.yaml"):
        found |= set(re.findall(r"\$\{env:(\w+)", path.read_text()))
    assert found >= {"PROMETHEUS_REMOTE_WRITE_URL", "TEMPO_OTLP_ENDPOINT", "AIMON_KEEP_MESSAGE_CONTENT"}
    for variable in found:
        assert f"`{variable}`" in readme, f"{variable} is not documented in the README"


def test_compose_services_and_mounts_exist() -> None:
    compose = load(COLLECTOR / "compose.yaml")
    assert set(compose["services"]) == {"otel-collector", "prometheus", "tempo", "alertmanager", "grafana"}
    for name, service in compose["services"].items():
        assert ":" in service["image"] and not service["image"].endswith(":latest"), f"{name}: pin the image"
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source == "./secrets":  # made from secrets.example by the user, never committed
                source = "./secrets.example"
            assert (COLLECTOR / source).exists(), f"{name}: mounts {source}, which does not exist"
        for dependency in service.get("depends_on", []):
            assert dependency in compose["services"]
    assert "--web.enable-remote-write-receiver" in compose["services"]["prometheus"]["command"]


def test_compose_is_secure_by_default() -> None:
    """No anonymous Grafana, secrets from files that are not committed, ports on this host only,
    prompts and replies dropped by the Collector unless kept on purpose."""
    compose = load(COLLECTOR / "compose.yaml")
    grafana = compose["services"]["grafana"]
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana["environment"]
    assert grafana["env_file"] == ["./secrets/grafana.env"]
    assert "GF_SECURITY_ADMIN_PASSWORD=" in (COLLECTOR / "secrets.example" / "grafana.env").read_text()
    assert "collector/secrets/" in (ROOT / ".gitignore").read_text().splitlines()
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port} is open beyond this host"
    assert compose["services"]["otel-collector"]["environment"]["AIMON_KEEP_MESSAGE_CONTENT"] == "false"
    alertmanager = load(COLLECTOR / "alertmanager.base.yml")
    assert alertmanager["global"]["smtp_auth_password_file"].startswith("/etc/alertmanager/secrets/")
    assert all("api_url" not in slack for r in alertmanager["receivers"] for slack in r.get("slack_configs", []))
    secrets = {path.name for path in (COLLECTOR / "secrets.example").iterdir()}
    assert secrets == {"grafana.env", "smtp-password", "chat-webhook-url"}


def test_grafana_provisioning_points_at_generated_files() -> None:
    provisioning = ROOT / "dashboards" / "grafana" / "provisioning"
    datasources = {d["uid"]: d for d in load(provisioning / "datasources" / "aimon.yaml")["datasources"]}
    assert set(datasources) == {"prometheus", "tempo", "alertmanager"}
    assert not (provisioning / "alerting").exists()  # Grafana-managed alerts are off by default
    alternative = provisioning.parent / "alerting-alternative"
    alerting = load(alternative / "aimon-alerts.yaml")
    uids = [r["uid"] for g in alerting["groups"] for r in g["rules"]]
    assert len(uids) == len(set(uids)) >= 8
    assert all(
        q["datasourceUid"] in ("prometheus", "__expr__")
        for g in alerting["groups"]
        for r in g["rules"]
        for q in r["data"]
    )
    contacts = load(alternative / "contact-points.yaml")
    assert {r["type"] for c in contacts["contactPoints"] for r in c["receivers"]} == {"webhook", "email"}


def test_prometheus_config_passes_promtool() -> None:
    result = subprocess.run(
        [require("promtool"), "check", "config", str(COLLECTOR / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
