"""Spend budgets per tenant, rendered into Prometheus recording and alerting rules.

    default: {period: monthly, amount_usd: 100}        # optional: every tenant without its own budget
    budgets:
      - {tenant: acme, period: monthly, amount_usd: 500}
      - {tenant: globex, period: daily, amount_usd: 20, provider: openai, feature: search}

Periods are rolling windows ending now: ``daily`` the last 24 hours, ``weekly`` the last 7 days,
``monthly`` the last 30 days. Prometheus ranges have a fixed length, so a calendar month to
date is not expressible as one; the Budgets dashboard shows month-to-date projections instead.
Without a ``default``, tenants without a budget have none and raise no budget alert (their
spend still shows on the dashboards and trips the global daily-spend tiers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aimon_otel.alerts import COST
from aimon_otel.config import AimonConfigError

WINDOWS = {"daily": "1d", "weekly": "7d", "monthly": "30d"}
WARNING_RATIO = 0.8
_LABEL_VALUE = re.compile(r"^[^\"\\\n]+$")


@dataclass(frozen=True)
class Budget:
    tenant: str | None
    """None for the default budget of tenants that have none of their own."""
    period: str
    amount_usd: float
    provider: str | None = None
    feature: str | None = None

    @property
    def name(self) -> str:
        parts = [self.tenant or "default", self.period, self.provider, self.feature]
        return "-".join(p for p in parts if p)


@dataclass(frozen=True)
class Budgets:
    budgets: tuple[Budget, ...]
    default: Budget | None


def load_budgets(path: str | Path) -> Budgets:
    name = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AimonConfigError(f"{name}: cannot read the budgets file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise AimonConfigError(f"{name}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AimonConfigError(f"{name}: the top level must be a mapping with 'budgets' and optionally 'default'")
    unknown = sorted(set(map(str, data)) - {"budgets", "default"})
    if unknown:
        raise AimonConfigError(f"{name}: unknown key(s) {unknown}; use 'budgets' and 'default'")
    entries = data.get("budgets") or []
    if not isinstance(entries, list):
        raise AimonConfigError(f"{name}: 'budgets' must be a list of {{tenant, period, amount_usd}} entries")
    budgets = tuple(_budget(entry, f"{name}: budgets[{i}]", tenant_required=True) for i, entry in enumerate(entries))
    seen: set[str] = set()
    for budget in budgets:
        if budget.name in seen:
            raise AimonConfigError(f"{name}: two budgets named {budget.name!r}; give each tenant one budget per period")
        seen.add(budget.name)
    default = data.get("default")
    return Budgets(
        budgets, _budget(default, f"{name}: default", tenant_required=False) if default is not None else None
    )


def _budget(entry: Any, where: str, tenant_required: bool) -> Budget:
    if not isinstance(entry, dict):
        raise AimonConfigError(f"{where}: must be a mapping like {{tenant: acme, period: monthly, amount_usd: 500}}")
    allowed = {"tenant", "period", "amount_usd", "provider", "feature"} if tenant_required else {"period", "amount_usd"}
    unknown = sorted(set(map(str, entry)) - allowed)
    if unknown:
        raise AimonConfigError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(allowed)}")
    tenant = entry.get("tenant")
    if tenant_required and (not isinstance(tenant, str) or not _LABEL_VALUE.match(tenant)):
        raise AimonConfigError(f"{where}: 'tenant' must be the tenant.id as a string, got {tenant!r}")
    period = entry.get("period")
    if period not in WINDOWS:
        raise AimonConfigError(f"{where}: 'period' must be one of {sorted(WINDOWS)}, got {period!r}")
    amount = entry.get("amount_usd")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not amount > 0:
        raise AimonConfigError(f"{where}: 'amount_usd' must be a number above 0, got {amount!r}")
    extras = {}
    for key in ("provider", "feature"):
        value = entry.get(key)
        if value is not None and (not isinstance(value, str) or not _LABEL_VALUE.match(value)):
            raise AimonConfigError(f"{where}: '{key}' must be a string, got {value!r}")
        extras[key] = value
    return Budget(tenant if tenant_required else None, str(period), float(amount), **extras)


def _selector(budget: Budget, others: list[str]) -> str:
    matchers = []
    if budget.tenant is not None:
        matchers.append(f'tenant_id="{budget.tenant}"')
    elif others:
        matchers.append('tenant_id!~"{}"'.format("|".join(re.escape(t) for t in sorted(others))))
    else:
        matchers.append('tenant_id!=""')
    if budget.provider:
        matchers.append(f'gen_ai_provider_name="{budget.provider}"')
    if budget.feature:
        matchers.append(f'aimon_feature="{budget.feature}"')
    return "{" + ",".join(matchers) + "}"


def render_rules(budgets: Budgets) -> dict[str, Any]:
    """Recording rules ``aimon_budget_usd`` and ``aimon:budget_spend_usd``, and alerts at 80% and 100%."""
    recording: list[dict[str, Any]] = []
    named = sorted({b.tenant for b in budgets.budgets if b.tenant})
    for budget in budgets.budgets:
        labels = {"budget": budget.name, "tenant_id": budget.tenant or "", "period": budget.period}
        recording.append(
            {"record": "aimon_budget_usd", "expr": f"vector({budget.amount_usd:g})", "labels": dict(labels)}
        )
        recording.append(
            {
                "record": "aimon:budget_spend_usd",
                "expr": f"sum(increase({COST}{_selector(budget, named)}[{WINDOWS[budget.period]}])) or vector(0)",
                "labels": dict(labels),
            }
        )
    if budgets.default is not None:
        default = budgets.default
        recording.append(
            {
                "record": "aimon:default_budget_spend_usd",
                "expr": f"sum by (tenant_id) (increase({COST}{_selector(default, named)}[{WINDOWS[default.period]}]))",
                "labels": {"budget": "default", "period": default.period, "budget_usd": f"{default.amount_usd:g}"},
            }
        )
    usage = "aimon:budget_spend_usd / on(budget) group_left() aimon_budget_usd"
    alerts: list[dict[str, Any]] = [
        {
            "alert": "GenAITenantBudgetWarning",
            "expr": f"{usage} >= {WARNING_RATIO:g} < 1",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Tenant {{ $labels.tenant_id }} has used over 80% of its {{ $labels.period }} LLM budget",
                "description": "{{ $value | humanizePercentage }} of budget {{ $labels.budget }} is spent.",
            },
        },
        {
            "alert": "GenAITenantBudgetExceeded",
            "expr": f"{usage} >= 1",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "Tenant {{ $labels.tenant_id }} is over its {{ $labels.period }} LLM budget",
                "description": "{{ $value | humanizePercentage }} of budget {{ $labels.budget }} is spent.",
            },
        },
    ]
    if budgets.default is not None:
        amount = f"{budgets.default.amount_usd:g}"
        alerts += [
            {
                "alert": "GenAITenantDefaultBudgetWarning",
                "expr": f"aimon:default_budget_spend_usd / {amount} >= {WARNING_RATIO:g} < 1",
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": "Tenant {{ $labels.tenant_id }} has used over 80% of the default "
                    "{{ $labels.period }} LLM budget ($" + amount + ")"
                },
            },
            {
                "alert": "GenAITenantDefaultBudgetExceeded",
                "expr": f"aimon:default_budget_spend_usd / {amount} >= 1",
                "labels": {"severity": "critical"},
                "annotations": {
                    "summary": "Tenant {{ $labels.tenant_id }} is over the default "
                    "{{ $labels.period }} LLM budget ($" + amount + ")"
                },
            },
        ]
    # One group: Prometheus runs a group's rules in order, so each alert reads the spend recorded in the
    # same evaluation. Separate groups run independently and an alert could see last minute's figure.
    return {"groups": [{"name": "aimon-budgets", "interval": "1m", "rules": [*recording, *alerts]}]}


def render_yaml(budgets: Budgets) -> str:
    header = "# Generated by `aimon-otel budgets render`; edit the budgets file, not this.\n"
    return header + yaml.safe_dump(render_rules(budgets), sort_keys=False, width=200)
