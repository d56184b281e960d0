"""Alert and budget rules checked and unit-tested with the real promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from aimon_otel import AimonConfigError
from aimon_otel.budgets import load_budgets, render_yaml
from tests.tools import require

ROOT = Path(__file__).resolve().parents[1]
RULES = sorted((ROOT / "collector" / "rules").glob("*.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("promtool"), *args], capture_output=True, text=True, timeout=120, check=False)


def test_committed_budget_rules_match_the_example_budgets() -> None:
    assert (ROOT / "collector" / "rules" / "aimon-budgets.yml").read_text() == render_yaml(
        load_budgets(ROOT / "examples" / "budgets.yaml")
    ), "run: aimon-otel budgets render examples/budgets.yaml -o collector/rules/aimon-budgets.yml"


def test_promtool_check_rules() -> None:
    assert len(RULES) == 2
    result = promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2


@pytest.mark.parametrize("unit_tests", ["alerts_test.yml", "budgets_test.yml"])
def test_promtool_unit_tests(unit_tests: str) -> None:
    result = promtool("test", "rules", str(ROOT / "tests" / "promtool" / unit_tests))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "budgets: [{tenant: a, period: yearly, amount_usd: 5}]",
            "budgets[0]: 'period' must be one of ['daily', 'monthly', 'weekly']",
        ),
        ("budgets: [{tenant: a, period: daily, amount_usd: -5}]", "budgets[0]: 'amount_usd' must be a number above 0"),
        ("budgets: [{period: daily, amount_usd: 5}]", "budgets[0]: 'tenant' must be the tenant.id as a string"),
        ("budgets: [{tenant: a, period: daily, amount_usd: 5, team: x}]", "budgets[0]: unknown key(s) ['team']"),
        (
            "budgets:\n  - {tenant: a, period: daily, amount_usd: 5}\n  - {tenant: a, period: daily, amount_usd: 6}",
            "two budgets named 'a-daily'",
        ),
        ("default: {period: daily}", "default: 'amount_usd' must be a number above 0"),
        ("budget: []", "unknown key(s) ['budget']"),
        ("budgets: [", "not valid YAML"),
    ],
)
def test_bad_budgets_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(text)
    with pytest.raises(AimonConfigError) as info:
        load_budgets(path)
    assert str(path) in str(info.value) and message in str(info.value)
