"""The aimon-otel command line, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CLI = str(Path(sys.executable).with_name("aimon-otel"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60, check=False)


def test_price_json() -> None:
    result = run("price", "gpt-4o-mini", "--json", "--at", "2026-11-01")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["matched"] == "gpt-4o-mini" and payload["source"] == "genai-prices"
    assert payload["prices"]["input_tokens"]["price"] == "0.15"
    assert payload["prices"]["cache_read_tokens"]["price"] == "0.075"


def test_cost_text_and_json() -> None:
    text = run(
        "cost",
        "claude-sonnet-4-5",
        "--provider",
        "anthropic",
        "--input",
        "1000",
        "--output",
        "100",
        "--cache-read",
        "200",
        "--cache-write",
        "300",
    )
    assert text.returncode == 0 and text.stdout.startswith("$0.004185 (claude-sonnet-4-5, anthropic)")
    as_json = json.loads(
        run("cost", "gpt-4o-mini", "--input", "120", "--output", "30", "--cache-read", "40", "--json").stdout
    )
    assert as_json["total_usd"] == "0.000033" and as_json["status"] == "priced"
    unknown = run("cost", "nope-model", "--input", "1", "--output", "1", "--json")
    assert unknown.returncode == 1 and json.loads(unknown.stdout)["status"] == "unknown_model"


def test_pricing_check(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("aliases:\n  - {model: prod, target: gpt-4o}\n  - {model: typo, target: gpt-4oo}\n")
    result = run("pricing", "check", str(good), "--json")
    payload = json.loads(result.stdout)
    assert result.returncode == 1
    assert payload["unknown_alias_targets"] == [{"provider": None, "model": "gpt-4oo"}]
    bad = tmp_path / "bad.yaml"
    bad.write_text("multipliers:\n  - {factor: -1}\n")
    failed = run("pricing", "check", str(bad))
    assert failed.returncode == 2
    assert f"{bad}: multipliers[0]: factor must be above 0" in failed.stderr
