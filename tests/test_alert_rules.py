"""The alert rules checked and unit-tested with the real promtool (budget rules: test_budget_rules.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.tools import require

ROOT = Path(__file__).resolve().parents[1]
RULES = sorted((ROOT / "collector" / "rules").glob("*.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("promtool"), *args], capture_output=True, text=True, timeout=120, check=False)


def test_promtool_check_rules() -> None:
    assert len(RULES) == 2
    result = promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2


@pytest.mark.parametrize("unit_tests", ["alerts_test.yml"])
def test_promtool_unit_tests(unit_tests: str) -> None:
    result = promtool("test", "rules", str(ROOT / "tests" / "promtool" / unit_tests))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
