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


def test_cost_names_the_flag_at_fault() -> None:
    result = run("cost", "gpt-4o", "--input", "10", "--cache-read", "50", "--output", "1")
    assert result.returncode == 1
    assert result.stdout.strip() == "gpt-4o: invalid_usage (--cache-read exceeds --input)"
    negative = run("cost", "gpt-4o", "--input", "-5")
    assert negative.returncode == 2 and "argument --input: -5 is negative" in negative.stderr
    not_a_number = run("cost", "gpt-4o", "--output", "lots")
    assert not_a_number.returncode == 2 and "'lots' is not a whole number" in not_a_number.stderr


def test_bad_at_lists_the_accepted_formats() -> None:
    result = run("price", "gpt-4o", "--at", "yesterday")
    assert result.returncode == 2
    assert "'yesterday' is not a date or time; accepted: 2026-06-01, 2026-06-01T14:30" in result.stderr
    assert "_when" not in result.stderr  # no internal names


def test_provider_is_inferred_from_the_model() -> None:
    claude = run("price", "claude-sonnet-4-5", "--json", "--at", "2026-11-01")
    assert claude.returncode == 0 and json.loads(claude.stdout)["provider"] == "anthropic"
    groq = run("price", "llama-3.1-8b-instant", "--json")
    assert groq.returncode == 0 and json.loads(groq.stdout)["provider"] == "groq"
    cost = run("cost", "claude-haiku-4-5", "--input", "100", "--output", "10")
    assert cost.returncode == 0 and cost.stdout.startswith("$0.00015 (claude-haiku-4-5, anthropic)")


def test_ambiguous_model_asks_for_the_provider() -> None:
    result = run("price", "anthropic.claude-haiku-4-5-20251001-v1:0")
    assert result.returncode == 2
    assert "priced by several providers (aws, google); choose one with --provider" in result.stderr
    chosen = run("price", "anthropic.claude-haiku-4-5-20251001-v1:0", "--provider", "aws.bedrock", "--json")
    assert chosen.returncode == 0 and json.loads(chosen.stdout)["provider"] == "aws"


def test_unknown_service_tier_is_an_error() -> None:
    result = run("price", "gpt-4o", "--service-tier", "turbo")
    assert result.returncode == 2
    assert "unknown --service-tier 'turbo'; accepted:" in result.stderr and "flex" in result.stderr
    assert run("price", "gpt-4o", "--service-tier", "flex").returncode == 0


def test_budgets_render_on_the_cli_path(tmp_path: Path) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(Path(__file__).parents[1].joinpath("examples", "budgets.yaml").read_text())
    out = tmp_path / "rules.yml"
    result = run("budgets", "render", str(budgets), "-o", str(out))
    assert result.returncode == 0, result.stderr
    import yaml

    groups = yaml.safe_load(out.read_text())["groups"]
    assert groups and all(rule.get("expr") for group in groups for rule in group["rules"])
    from tests.tools import require

    checked = subprocess.run(
        [require("promtool"), "check", "rules", str(out)], capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    stdout = run("budgets", "render", str(budgets))
    assert stdout.returncode == 0 and yaml.safe_load(stdout.stdout) == yaml.safe_load(out.read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text("budgets: [{name: a, period: fortnightly, limit_usd: 5}]\n")
    failed = run("budgets", "render", str(bad))
    assert failed.returncode == 2 and str(bad) in failed.stderr


def test_budgets_render_links_to_your_grafana_and_runbook(tmp_path: Path) -> None:
    import yaml

    budgets = Path(__file__).parents[1] / "examples" / "budgets.yaml"

    def annotations(*extra: str) -> list[dict[str, str]]:
        result = run("budgets", "render", str(budgets), *extra)
        assert result.returncode == 0, result.stderr
        rules = yaml.safe_load(result.stdout)["groups"][0]["rules"]
        return [rule["annotations"] for rule in rules if "alert" in rule]

    default = annotations()
    assert default and {a["dashboard"] for a in default} == {"http://localhost:3000/d/aimon-budgets"}
    chosen = annotations("--grafana-url", "https://grafana.example.com/", "--runbook-url", "https://wiki/llm")
    assert {a["dashboard"] for a in chosen} == {"https://grafana.example.com/d/aimon-budgets"}
    assert {a["runbook_url"] for a in chosen} == {"https://wiki/llm#llm-budget"}
    for bad in ("grafana.example.com", "ftp://grafana", "https://grafana?x=1"):
        failed = run("budgets", "render", str(budgets), "--grafana-url", bad)
        assert failed.returncode == 2 and "--grafana-url" in failed.stderr and "https://" in failed.stderr, bad


def test_the_static_rules_generator_takes_the_grafana_url(tmp_path: Path) -> None:
    import sys

    import pytest
    import yaml

    sys.path.insert(0, str(Path(__file__).parents[1] / "dashboards"))
    generate = pytest.importorskip("generate")  # needs grafana-foundation-sdk (the test extra)
    from aimon_otel.backend.alerts import Links

    files = generate.render_all(Links.checked("https://grafana.example.com"))
    rules = yaml.safe_load(files[generate.PROM_RULES])["groups"][0]["rules"]
    dashboards = {rule["annotations"]["dashboard"] for rule in rules if "alert" in rule}
    assert dashboards == {"https://grafana.example.com/d/aimon-overview"}
    with pytest.raises(SystemExit) as refused:
        generate.main(["--grafana-url", "localhost:3000"])
    assert refused.value.code == 2
