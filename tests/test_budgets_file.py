"""The budgets file is checked when loaded: every error names the file, the budget, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from aimon_otel import AimonConfigError
from aimon_otel.budgets import load_budgets

ROOT = Path(__file__).resolve().parents[1]
GOOD = "name: b, limit_usd: 5, period: day"


def test_the_example_file_loads() -> None:
    budgets = load_budgets(ROOT / "examples" / "budgets.yaml")
    assert str(budgets.timezone) == "Europe/Berlin"
    acme = budgets.named("acme-monthly")
    assert (acme.action, acme.warn_at, acme.notify, acme.match) == (
        "block",
        (0.5, 0.8),
        ("finance",),
        (("tenant_id", "acme"),),
    )
    assert budgets.named("per-user-daily").for_each == "user_id"
    assert budgets.named("all-spend-30d").period.text == "rolling 30d"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"budgets: [{{{GOOD}, team: x}}]", "budget 'b' (budgets[0]): unknown key(s) ['team']"),
        (
            "budgets: [{name: b, limit_usd: 5, period: monthly}]",
            "key 'period': 'monthly' is not a period; use day, week",
        ),
        ("budgets: [{name: b, limit_usd: 5, period: {rolling: 2w}}]", "key 'period'"),
        ("budgets: [{name: b, limit_usd: -5, period: day}]", "key 'limit_usd': -5 must be a finite number of dollars"),
        ("budgets: [{name: b, limit_usd: .inf, period: day}]", "key 'limit_usd': inf must be a finite number"),
        ("budgets: [{name: b, limit_usd: .nan, period: day}]", "key 'limit_usd': nan must be a finite number"),
        ("budgets: [{name: b, limit_usd: true, period: day}]", "key 'limit_usd'"),
        ("budgets: [{name: b, limit_tokens: 1.5, period: day}]", "key 'limit_tokens': 1.5 must be a whole number"),
        ("budgets: [{name: b, period: day}]", "give exactly one of limit_usd (dollars) or limit_tokens"),
        ("budgets: [{name: b, limit_usd: 1, limit_tokens: 5, period: day}]", "give exactly one of limit_usd"),
        (f"budgets: [{{{GOOD}}}, {{{GOOD}}}]", "budgets[1]: key 'name': 'b' is also the name of budgets[0]"),
        (
            "budgets: [{name: Acme Monthly, limit_usd: 5, period: day}]",
            "key 'name': 'Acme Monthly' is not a budget name",
        ),
        ("budgets: [{limit_usd: 5, period: day}]", "budgets[0]: key 'name': None is not a budget name"),
        ("timezone: Mars/Olympus\nbudgets: []", "key 'timezone': 'Mars/Olympus' is not a timezone; use an IANA name"),
        ("timezone: 5\nbudgets: []", "key 'timezone': 5 is not a timezone"),
        (f"budgets: [{{{GOOD}, match: {{team: x}}}}]", "key 'match': 'team' is not a field to match; use any of"),
        (f"budgets: [{{{GOOD}, match: {{tenant_id: ''}}}}]", "key 'match': tenant_id: '' is empty"),
        (f"budgets: [{{{GOOD}, match: {{tenant_id: ' acme'}}}}]", "leading/trailing spaces"),
        (f"budgets: [{{{GOOD}, match: {{tenant_id: 'acme-[12'}}}}]", "unclosed '['"),
        (f"budgets: [{{{GOOD}, match: {{tenant_id: yes}}}}]", "must be a string (quote it)"),
        (f"budgets: [{{{GOOD}, match: {{provider: open-ai}}}}]", "matches no provider aimon-otel reports"),
        (f"budgets: [{{{GOOD}, match: {{provider: 'bedrock*'}}}}]", "matches no provider"),
        (f"budgets: [{{{GOOD}, for_each: team}}]", "key 'for_each': 'team' is not a field to count by"),
        (f"budgets: [{{{GOOD}, action: stop}}]", "key 'action': 'stop' is not an action; use alert"),
        (f"budgets: [{{{GOOD}, warn_at: [0.5, 80]}}]", "key 'warn_at': 80 must be a fraction above 0 and at most 1"),
        (f"budgets: [{{{GOOD}, warn_at: []}}]", "key 'warn_at'"),
        (f"budgets: [{{{GOOD}, notify: [1]}}]", "key 'notify'"),
        (f"budgets: [{{{GOOD}, reserve: true}}]", "key 'reserve': only a budget with action: block"),
        ("budgets: [{tenant: acme, period: monthly, amount_usd: 500}]", "this is the old budgets format"),
        ("default: {period: monthly, amount_usd: 100}", "old budgets format"),
        ("budget: []", "unknown key(s) ['budget']"),
        ("budgets: {name: b}", "'budgets' must be a list of budgets"),
        ("- a\n- b", "the top level must be a mapping"),
        ("budgets: [", "not valid YAML"),
    ],
)
def test_bad_budgets_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(text)
    with pytest.raises(AimonConfigError) as info:
        load_budgets(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(AimonConfigError, match=r"missing\.yaml: cannot read the budgets file"):
        load_budgets(tmp_path / "missing.yaml")


def test_globs_numbers_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(
        "budgets:\n"
        "  - {name: eu, match: {tenant_id: 'eu-*', provider: 'azure.*', model: 'gpt-4o*'},"
        " limit_usd: 2.5, period: week}\n"
        "  - {name: numeric, match: {tenant_id: 1042}, limit_tokens: 2_000_000, period: year}\n"
    )
    eu, numeric = load_budgets(path).budgets
    assert (eu.action, eu.warn_at, eu.notify, eu.unit, eu.limit_units) == ("alert", (0.8,), (), "USD", 2_500_000_000)
    assert eu.applies_to(("eu-west", None, None, None, "azure.ai.openai", "gpt-4o-mini"))
    assert not eu.applies_to(("us-east", None, None, None, "azure.ai.openai", "gpt-4o-mini"))
    assert not eu.applies_to((None, None, None, None, "azure.ai.openai", "gpt-4o-mini"))
    assert (numeric.match, numeric.unit, numeric.limit_units) == ((("tenant_id", "1042"),), "token", 2_000_000)


def test_budgets_check_on_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from aimon_otel.cli import main

    assert main(["budgets", "check", str(ROOT / "examples" / "budgets.yaml")]) == 0
    out = capsys.readouterr().out
    assert "OK, 7 budgets, periods in Europe/Berlin" in out
    assert "acme-monthly: $500.00 per month (tenant_id=acme); block" in out
    assert "per-user-daily: $2.00 per day (feature=chat, each user_id); block" in out
    assert main(["budgets", "check", "--json", str(ROOT / "examples" / "budgets.yaml")]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert checked["ok"] and checked["budgets"][0]["warn_at"] == [0.5, 0.8]
    bad = tmp_path / "bad.yaml"
    bad.write_text("budgets: [{name: b, limit_usd: 5, period: day, action: stop}]\n")
    assert main(["budgets", "check", str(bad)]) == 2
    assert "key 'action': 'stop' is not an action" in capsys.readouterr().err
    assert main(["budgets", "status", str(ROOT / "examples" / "budgets.yaml")]) == 2  # memory: nothing to read
    assert "the memory ledger lives inside the app's process" in capsys.readouterr().err
