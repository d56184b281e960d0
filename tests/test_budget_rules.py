"""Budget rules and Alertmanager routes from the budgets file, run on the real promtool and amtool.

The promtool unit test is built here (series, then exactly which alerts fire at which minute,
with their full annotations), written beside the rendered rules and run by ``promtool test rules``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from aimon_otel.budgets import load_budgets
from aimon_otel.budgets.rules import render_alertmanager_yaml, render_rules_yaml
from aimon_otel.cli import main
from tests.tools import require

ROOT = Path(__file__).resolve().parents[1]
TEST_BUDGETS = ROOT / "tests" / "promtool" / "budgets.yaml"
NOV_30_BERLIN_MIDNIGHT = 1796079600  # 2026-12-01 00:00 Europe/Berlin = 2026-11-30 23:00 UTC
RESETS_TEXT = "; the period resets 2026-11-30 23:00:00 +0000 UTC"


def run(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require(binary), *args], capture_output=True, text=True, timeout=120, check=False)


def gauge(metric: str, budget: str, key: str, unit: str, values: str, **extra: str) -> dict[str, str]:
    labels = {"aimon_budget_name": budget, "aimon_budget_key": key, "aimon_budget_unit": unit, **extra}
    inner = ", ".join(f"{name}={_quoted(value)}" for name, value in labels.items())
    return {"series": f"{metric}{{{inner}}}", "values": values}


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def alert(
    budget: str, key: str, unit: str, tier: int, threshold: str, *, summary: str, description: str
) -> dict[str, Any]:
    labels = {
        "severity": "critical" if threshold == "100%" else "warning",
        "aimon_budget_tier": str(tier),
        "threshold": threshold,
        "aimon_budget_name": budget,
        "aimon_budget_unit": unit,
    }
    if key:  # Prometheus drops empty labels
        labels["aimon_budget_key"] = key
    annotations = {
        "summary": summary,
        "description": description,
        "runbook_url": "RUNBOOK.md#llm-budget",
        "dashboard": "http://localhost:3000/d/aimon-budgets",
    }
    return {"exp_labels": labels, "exp_annotations": annotations}


def per_tenant(key: str, spent: str, percent: str, tier: int = 1, resets: str = "") -> dict[str, Any]:
    reached = tier == 2
    return alert(
        "per-tenant",
        key,
        "USD",
        tier,
        "100%" if reached else "80%",
        summary=f"LLM budget per-tenant for {key} "
        + ("is spent: " if reached else "is at ")
        + f"{percent} of $100.00 this month",
        description=f"Spent ${spent} of $100.00 in the current month (Europe/Berlin){resets}.",
    )


def acme(tier: int, spent: str, percent: str) -> dict[str, Any]:
    threshold = {1: "50%", 2: "80%", 3: "100%"}[tier]
    reached = tier == 3
    return alert(
        "acme-corp-monthly",
        "",
        "USD",
        tier,
        threshold,
        summary="LLM budget acme-corp-monthly "
        + ("is spent: " if reached else "is at ")
        + f"{percent} of $500.00 this month",
        description=f"Spent ${spent} of $500.00 in the current month (Europe/Berlin){RESETS_TEXT}."
        + (" Calls matching it are refused until it resets." if reached else ""),
    )


OBRIEN_TOKENS = alert(
    "obrien-weekly",
    "",
    "token",
    1,
    "80%",
    summary="LLM budget obrien-weekly is at 90% of 1,000,000 tokens this week",
    description="Spent 900k tokens of 1,000,000 tokens in the current week (Europe/Berlin).",
)


def steady_warnings() -> list[dict[str, Any]]:
    """The alerts that hold through the whole test: keys with a dot, a quote and non-ASCII letters."""
    return [
        OBRIEN_TOKENS,
        per_tenant("globex.io", "85.00", "85%"),
        per_tenant("müller", "81.00", "81%"),
        per_tenant("o'brien", "100.50", "100.5%", resets=RESETS_TEXT),
    ]


OBRIEN_REACHED = per_tenant("o'brien", "100.50", "100.5%", tier=2, resets=RESETS_TEXT)


def unit_test() -> dict[str, Any]:
    series = [
        # acme-corp: $240, +$10 a minute; 50% ($250) at 1m, 80% ($400) at 16m, 100% at 26m; at 30m the
        # Berlin month ends and the guard's gauge falls to 0. Two processes export the same shared ledger.
        *(gauge("aimon_budget_spent", "acme-corp-monthly", "", "USD", "240+10x29 0x10", instance=i) for i in "ab"),
        *(gauge("aimon_budget_limit", "acme-corp-monthly", "", "USD", "500x40", instance=i) for i in "ab"),
        gauge("aimon_budget_resets_at", "acme-corp-monthly", "", "USD", f"{NOV_30_BERLIN_MIDNIGHT}x29 1798758000x10"),
        # per-tenant, $100 a month each tenant: a dot, a quote, a double quote, non-ASCII letters.
        gauge("aimon_budget_spent", "per-tenant", "globex.io", "USD", "85x40"),
        gauge("aimon_budget_spent", "per-tenant", "o'brien", "USD", "100.5x40"),
        gauge("aimon_budget_spent", "per-tenant", 'say "hi"', "USD", "10x40"),
        gauge("aimon_budget_spent", "per-tenant", "müller", "USD", "81x40"),
        *(
            gauge("aimon_budget_limit", "per-tenant", k, "USD", "100x40")
            for k in ("globex.io", "o'brien", 'say "hi"', "müller")
        ),
        gauge("aimon_budget_resets_at", "per-tenant", "o'brien", "USD", f"{NOV_30_BERLIN_MIDNIGHT}x40"),
        # o'brien's weekly token budget: 900,000 of 1,000,000 tokens.
        gauge("aimon_budget_spent", "obrien-weekly", "", "token", "900000x40"),
        gauge("aimon_budget_limit", "obrien-weekly", "", "token", "1000000x40"),
        # quiet is action: warn (events in the app only): over its limit and no alert.
        gauge("aimon_budget_spent", "quiet", "", "USD", "5x40"),
        gauge("aimon_budget_limit", "quiet", "", "USD", "1x40"),
    ]
    checks = [
        (0, "LLMBudgetWarning", steady_warnings()),
        (0, "LLMBudgetReached", [OBRIEN_REACHED]),
        (1, "LLMBudgetWarning", [acme(1, "250.00", "50%"), *steady_warnings()]),
        (15, "LLMBudgetWarning", [acme(1, "390.00", "78%"), *steady_warnings()]),
        # 80% at 16m: the 50% tier stays firing beside it (Alertmanager's inhibit rule mutes it).
        (16, "LLMBudgetWarning", [acme(1, "400.00", "80%"), acme(2, "400.00", "80%"), *steady_warnings()]),
        (25, "LLMBudgetReached", [OBRIEN_REACHED]),
        (26, "LLMBudgetReached", [acme(3, "500.00", "100%"), OBRIEN_REACHED]),
        (29, "LLMBudgetWarning", [acme(1, "530.00", "106%"), acme(2, "530.00", "106%"), *steady_warnings()]),
        # The new month: acme-corp's three alerts resolve at the boundary, the others hold.
        (30, "LLMBudgetReached", [OBRIEN_REACHED]),
        (30, "LLMBudgetWarning", steady_warnings()),
    ]
    return {
        "rule_files": ["budgets-rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {  # the budgets table's state: 0 ok, 1 past the budget's first warn_at, 2 over
                        "expr": 'budget:aimon_budget_state:code{aimon_budget_name=~"acme-corp-monthly|per-tenant"}',
                        "eval_time": "20m",
                        "exp_samples": [
                            {
                                "labels": f'budget:aimon_budget_state:code{{aimon_budget_name="{name}", {key}'
                                'aimon_budget_unit="USD"}',
                                "value": value,
                            }
                            for name, key, value in (
                                ("acme-corp-monthly", "", 1),
                                ("per-tenant", 'aimon_budget_key="globex.io", ', 1),
                                ("per-tenant", 'aimon_budget_key="o\'brien", ', 2),
                                ("per-tenant", 'aimon_budget_key="say \\"hi\\"", ', 0),
                                ("per-tenant", 'aimon_budget_key="müller", ', 1),
                            )
                        ],
                    },
                    {
                        "expr": 'budget:aimon_budget_spent:max{aimon_budget_name="acme-corp-monthly"}',
                        "eval_time": "20m",
                        "exp_samples": [
                            {
                                "labels": "budget:aimon_budget_spent:max"
                                '{aimon_budget_name="acme-corp-monthly", aimon_budget_unit="USD"}',
                                "value": 440,
                            }
                        ],
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": f"{minute}m", "alertname": name, "exp_alerts": expected}
                    for minute, name, expected in checks
                ],
            }
        ],
    }


def test_promtool_runs_the_rendered_rules_minute_by_minute(tmp_path: Path) -> None:
    (tmp_path / "budgets-rules.yml").write_text(render_rules_yaml(load_budgets(TEST_BUDGETS)))
    (tmp_path / "budgets_test.yml").write_text(yaml.safe_dump(unit_test(), sort_keys=False, allow_unicode=True))
    checked = run("promtool", "check", "rules", str(tmp_path / "budgets-rules.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run("promtool", "test", "rules", str(tmp_path / "budgets_test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_committed_rules_and_alertmanager_config_are_rendered_from_the_example(tmp_path: Path) -> None:
    example = ROOT / "examples" / "budgets.yaml"
    rules, config = tmp_path / "rules.yml", tmp_path / "alertmanager.yml"
    assert main(["budgets", "render", str(example), "--rules", str(rules),
                 "--alertmanager", str(ROOT / "collector" / "alertmanager.base.yml"),
                 "--alertmanager-out", str(config)]) == 0  # fmt: skip
    fix = "run: make generate"
    assert (ROOT / "collector" / "rules" / "aimon-budgets.yml").read_text() == rules.read_text().replace(
        str(example), "examples/budgets.yaml"
    ), fix
    assert (ROOT / "collector" / "alertmanager.yml").read_text() == config.read_text().replace(
        str(example), "examples/budgets.yaml"
    ).replace(str(ROOT / "collector" / "alertmanager.base.yml"), "collector/alertmanager.base.yml"), fix


def test_alertmanager_routes_each_budget_to_its_receivers(tmp_path: Path) -> None:
    base = (ROOT / "collector" / "alertmanager.base.yml").read_text()
    config = tmp_path / "alertmanager.yml"
    config.write_text(render_alertmanager_yaml(load_budgets(TEST_BUDGETS), base, "alertmanager.base.yml"))
    checked = run("amtool", "check-config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    def receivers(*labels: str) -> str:
        result = run("amtool", "config", "routes", "test", f"--config.file={config}", *labels)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.strip()

    assert receivers("alertname=LLMBudgetReached", "aimon_budget_name=acme-corp-monthly") == "finance"
    assert receivers("alertname=LLMBudgetWarning", "aimon_budget_name=per-tenant", "aimon_budget_key=o'brien") == (
        "finance,team-chat"
    )
    assert receivers("alertname=LLMBudgetWarning", "aimon_budget_name=globex-daily") == "team-chat"  # the default
    # Without notify, the base tree: critical pages on-call and goes to the chat; with notify, only its receivers.
    assert receivers("alertname=LLMBudgetReached", "severity=critical", "aimon_budget_name=globex-daily") == (
        "on-call,team-chat"
    )
    assert receivers("severity=critical", "aimon_budget_name=acme-corp-monthly") == "finance"
    rendered = yaml.safe_load(config.read_text())
    assert {"source_matchers": ['alertname=~"LLMBudget.*|LLMCredits.*"', 'aimon_budget_tier="3"'],
            "target_matchers": ['alertname=~"LLMBudget.*|LLMCredits.*"', 'aimon_budget_tier=~"1|2"'],
            "equal": ["aimon_budget_name", "aimon_budget_key"]} in rendered["inhibit_rules"]  # fmt: skip
    # Rendering again over its own output replaces the routes instead of adding them twice.
    again = render_alertmanager_yaml(load_budgets(TEST_BUDGETS), config.read_text(), "alertmanager.yml")
    assert yaml.safe_load(again)["route"] == rendered["route"]
    assert yaml.safe_load(again)["inhibit_rules"] == rendered["inhibit_rules"]


def test_a_receiver_missing_from_alertmanager_is_named(tmp_path: Path) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets: [{name: b, limit_usd: 1, period: day, notify: [payroll]}]\n")
    from aimon_otel import AimonConfigError

    with pytest.raises(AimonConfigError, match="budget 'b': key 'notify': receiver 'payroll' is not among"):
        render_alertmanager_yaml(
            load_budgets(budgets), (ROOT / "collector" / "alertmanager.base.yml").read_text(), "am.yml"
        )


def test_promtool_fires_the_low_balance_and_used_up_alerts_minute_by_minute(tmp_path: Path) -> None:
    """A credit balance falling from $15 by $1 a minute ($12 at minute 3...): below $10 at minute 6, below $2
    at minute 14, used up (at or below $0) at minute 15; two app processes export the same balance."""
    from aimon_otel.budgets.spec import parse_budgets

    budgets = parse_budgets(
        {"budgets": [{"name": "tenant-credits", "for_each": "tenant_id", "credits": True,
                      "warn_below_usd": [10, 2], "action": "block"}]},
        str(tmp_path / "credits.yaml"),
    )  # fmt: skip
    (tmp_path / "credit-rules.yml").write_text(render_rules_yaml(budgets))
    series = [
        {"series": f'aimon_budget_balance_USD{{aimon_budget_name="tenant-credits", aimon_budget_key="acme", '
                   f'instance="{instance}"}}', "values": "15-1x20"}
        for instance in ("a", "b")
    ]  # fmt: skip

    def low(mark: str, tier: int, balance: str) -> dict[str, Any]:
        return {
            "exp_labels": {"severity": "warning", "aimon_budget_tier": str(tier), "threshold": f"${mark}",
                           "aimon_budget_name": "tenant-credits", "aimon_budget_key": "acme"},
            "exp_annotations": {
                "summary": f"LLM credits tenant-credits for acme are low: ${balance} left",
                "description": f"The prepaid balance of tenant-credits for acme is ${balance}, below ${mark}. "
                "Add credits (aimon-otel credits add) before calls are refused.",
                "runbook_url": "RUNBOOK.md#llm-budget",
                "dashboard": "http://localhost:3000/d/aimon-budgets",
            },
        }  # fmt: skip

    used_up = {
        "exp_labels": {"severity": "critical", "aimon_budget_tier": "3", "threshold": "$0",
                       "aimon_budget_name": "tenant-credits", "aimon_budget_key": "acme"},
        "exp_annotations": {
            "summary": "LLM credits tenant-credits for acme are used up: $0.00 left",
            "description": "The prepaid balance of tenant-credits for acme is $0.00. "
            "Calls it covers are refused (HTTP 402) until credits are added.",
            "runbook_url": "RUNBOOK.md#llm-budget",
            "dashboard": "http://localhost:3000/d/aimon-budgets",
        },
    }  # fmt: skip
    checks = [
        (5, "LLMCreditsLow", []),  # $10: not below
        (6, "LLMCreditsLow", [low("10", 1, "9.00")]),
        (13, "LLMCreditsLow", [low("10", 1, "2.00")]),  # $2: not below $2 yet
        (14, "LLMCreditsLow", [low("10", 1, "1.00"), low("2", 2, "1.00")]),
        (14, "LLMCreditsExhausted", []),
        (15, "LLMCreditsExhausted", [used_up]),
    ]
    test = {
        "rule_files": [str(tmp_path / "credit-rules.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [{"eval_time": f"{m}m", "alertname": n, "exp_alerts": e} for m, n, e in checks],
            }
        ],
    }
    (tmp_path / "credits_test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
    tested = run("promtool", "test", "rules", str(tmp_path / "credits_test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_credit_budgets_tiers_are_inhibited_like_a_budgets(tmp_path: Path) -> None:
    """Below $10, below $2, used up: three tiers, so only the highest of a balance notifies (amtool checks it)."""
    from aimon_otel.budgets.spec import parse_budgets

    budgets = parse_budgets(
        {"budgets": [{"name": "c", "for_each": "tenant_id", "credits": True, "warn_below_usd": [10, 2]}]}, "c.yaml"
    )
    base = (ROOT / "collector" / "alertmanager.base.yml").read_text()
    config = tmp_path / "alertmanager.yml"
    config.write_text(render_alertmanager_yaml(budgets, base, "alertmanager.base.yml"))
    checked = run("amtool", "check-config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    inhibit = yaml.safe_load(config.read_text())["inhibit_rules"]
    ours = [rule for rule in inhibit if any("aimon_budget_tier" in m for m in rule["source_matchers"])]
    assert [rule["source_matchers"][1] for rule in ours] == ['aimon_budget_tier="2"', 'aimon_budget_tier="3"']
    assert all('alertname=~"LLMBudget.*|LLMCredits.*"' in rule["target_matchers"] for rule in ours)
