"""Alert rules on the GenAI metrics, as data: rendered to Prometheus rule files and to
Grafana's alerting provisioning, so both say the same thing.

Metric names are the ones the OpenTelemetry Prometheus exporters (and the Collector's
remote write) give our instruments: ``gen_ai_usage_cost_USD_sum``,
``gen_ai_client_operation_duration_seconds_*``, ``aimon_pricing_unpriced_calls_total``.
No rule filters on a particular SDK, so other tools' ``gen_ai_*`` metrics count too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COST = "gen_ai_usage_cost_USD_sum"
CALLS = "gen_ai_client_operation_duration_seconds_count"
DURATION_BUCKETS = "gen_ai_client_operation_duration_seconds_bucket"
UNPRICED = "aimon_pricing_unpriced_calls_total"


@dataclass(frozen=True)
class Rule:
    name: str
    expr: str
    severity: str
    summary: str
    description: str
    for_: str = "0m"
    labels: dict[str, str] = field(default_factory=dict)

    def prometheus(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_ != "0m":
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity, **self.labels}
        rule["annotations"] = {"summary": self.summary, "description": self.description}
        return rule


@dataclass(frozen=True)
class Thresholds:
    """Defaults follow the usual LLM-spend runbooks; pass your own to ``standard_rules``."""

    daily_spend_usd: tuple[tuple[float, str], ...] = ((10, "medium"), (25, "high"), (50, "critical"))
    error_rate: tuple[tuple[float, str], ...] = ((0.10, "warning"), (0.25, "critical"))
    p95_latency_seconds: float = 30.0
    spike_factor: float = 3.0
    spike_floor_usd: float = 1.0
    """A spike alert also needs this much spend in the hour, so $0.01 -> $0.04 stays quiet."""


def standard_rules(thresholds: Thresholds = Thresholds()) -> list[Rule]:
    rules: list[Rule] = []
    daily = f"sum(increase({COST}[1d]))"
    tiers = sorted(thresholds.daily_spend_usd)
    for index, (amount, severity) in enumerate(tiers):
        upper = tiers[index + 1][0] if index + 1 < len(tiers) else None
        expr = f"{daily} > {amount:g}" + (f" and {daily} <= {upper:g}" if upper is not None else "")
        rules.append(
            Rule(
                f"GenAIDailySpendAbove{amount:g}USD",
                expr,
                severity,
                f"LLM spend over the last 24h is above ${amount:g}",
                'Spend over the last 24 hours is ${{ $value | printf "%.2f" }} (all providers and models).',
            )
        )
    total_calls = f"sum(rate({CALLS}[5m]))"
    failed_calls = f'sum(rate({CALLS}{{error_type!=""}}[5m]))'
    rates = sorted(thresholds.error_rate)
    for index, (rate, severity) in enumerate(rates):
        upper = rates[index + 1][0] if index + 1 < len(rates) else None
        ratio = f"({failed_calls} / {total_calls})"
        expr = f"{ratio} > {rate:g}" + (f" and {ratio} <= {upper:g}" if upper is not None else "")
        rules.append(
            Rule(
                f"GenAIErrorRateAbove{int(rate * 100)}Percent",
                expr,
                severity,
                f"More than {rate:.0%} of LLM calls fail",
                "{{ $value | humanizePercentage }} of LLM calls failed over the last 5 minutes.",
                for_="5m",
            )
        )
    rules.append(
        Rule(
            "GenAIHighLatencyP95",
            f"histogram_quantile(0.95, sum by (le, gen_ai_request_model) (rate({DURATION_BUCKETS}[5m]))) "
            f"> {thresholds.p95_latency_seconds:g}",
            "warning",
            "p95 latency of an LLM model is high",
            "p95 latency of {{ $labels.gen_ai_request_model }} is {{ $value | humanizeDuration }}.",
            for_="10m",
        )
    )
    hour = f"sum(increase({COST}[1h]))"
    rules.append(
        Rule(
            "GenAISpendSpike",
            f"{hour} > {thresholds.spike_factor:g} * sum(increase({COST}[1h] offset 1w)) and {hour} > {thresholds.spike_floor_usd:g}",
            "high",
            "LLM spend this hour is far above the same hour last week",
            f'Spend in the last hour is ${{{{ $value | printf "%.2f" }}}}, over {thresholds.spike_factor:g}x the same hour a week ago.',
        )
    )
    rules.append(
        Rule(
            "GenAIUnpricedCalls",
            f'sum by (gen_ai_provider_name, gen_ai_request_model) (increase({UNPRICED}{{aimon_pricing_status="unknown_model"}}[1h])) > 0',
            "warning",
            "LLM calls to a model with no known price",
            "{{ $labels.gen_ai_provider_name }}/{{ $labels.gen_ai_request_model }} has no price: its spend is not counted. "
            "Add it to AIMON_PRICING_FILE.",
        )
    )
    return rules


def prometheus_rule_file(rules: list[Rule], group: str = "aimon-genai") -> dict[str, Any]:
    return {"groups": [{"name": group, "rules": [rule.prometheus() for rule in rules]}]}


def grafana_alerting(
    rules: list[Rule], folder: str = "aimon", group: str = "aimon-genai", datasource_uid: str = "prometheus"
) -> dict[str, Any]:
    """The same rules in Grafana's file provisioning format (apiVersion 1)."""
    grafana_rules: list[dict[str, Any]] = []
    for rule in rules:
        labels: dict[str, str] = {"severity": rule.severity, **rule.labels}
        grafana_rules.append(
            {
                "uid": _uid(rule.name),
                "title": rule.name,
                "condition": "B",
                "data": [
                    {
                        "refId": "A",
                        "relativeTimeRange": {"from": 600, "to": 0},
                        "datasourceUid": datasource_uid,
                        "model": {"refId": "A", "expr": rule.expr, "instant": True},
                    },
                    {
                        "refId": "B",
                        "datasourceUid": "__expr__",
                        "model": {
                            "refId": "B",
                            "type": "threshold",
                            "expression": "A",
                            "conditions": [{"evaluator": {"type": "gt", "params": [0]}}],
                        },
                    },
                ],
                "noDataState": "OK",
                "execErrState": "Error",
                "for": rule.for_,
                "labels": labels,
                "annotations": {"summary": rule.summary, "description": rule.description},
            }
        )
    return {
        "apiVersion": 1,
        "groups": [{"orgId": 1, "name": group, "folder": folder, "interval": "1m", "rules": grafana_rules}],
    }


def _uid(name: str) -> str:
    import hashlib

    return "aimon-" + hashlib.sha1(name.encode()).hexdigest()[:12]
