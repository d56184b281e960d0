"""``aimon-otel budgets check | status | render``: the budgets file from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aimon_otel.alerts import Links
from aimon_otel.budgets.guard import BudgetStatus, Guard
from aimon_otel.budgets.rules import render_alertmanager_yaml, render_rules_yaml
from aimon_otel.budgets.setup import open_ledger
from aimon_otel.budgets.spec import BudgetsFile, load_budgets
from aimon_otel.config import AimonConfigError, Settings
from aimon_otel.privacy import user_id_hasher

_FIELD_FLAGS = {
    "tenant": "tenant_id",
    "user": "user_id",
    "feature": "feature",
    "agent": "agent",
    "provider": "provider",
    "model": "model",
}


def add_parsers(commands: Any) -> None:
    budgets = commands.add_parser(
        "budgets", help="spend budgets: check the file, see where budgets stand, render alerts"
    )
    budget_commands = budgets.add_subparsers(dest="budgets_command", required=True)

    check = budget_commands.add_parser(
        "check", help="validate a budgets file (default: $AIMON_BUDGETS); no side effects"
    )
    check.add_argument("file", nargs="?")
    check.add_argument("--json", action="store_true")

    status = budget_commands.add_parser("status", help="spend against each budget now, from the shared ledger")
    status.add_argument("file", nargs="?")
    status.add_argument(
        "--ledger", help="the ledger URL (default: $AIMON_BUDGET_LEDGER), e.g. redis://localhost:6379/0"
    )
    for flag in _FIELD_FLAGS:
        status.add_argument(f"--{flag}", help=f"only budgets that apply to this {flag}")
    status.add_argument("--json", action="store_true")

    render = budget_commands.add_parser("render", help="Prometheus rules and Alertmanager routes from a budgets file")
    render.add_argument("file", nargs="?")
    render.add_argument(
        "-o", "--rules", dest="rules", help="write the Prometheus rules here (default: standard output)"
    )
    render.add_argument("--alertmanager", metavar="BASE", help="an Alertmanager config to add the budget routes to")
    render.add_argument("--alertmanager-out", metavar="FILE", help="where to write it (default: standard output)")
    render.add_argument(
        "--grafana-url",
        metavar="URL",
        help="Grafana's base URL for the alerts' dashboard links (default: http://localhost:3000)",
    )
    render.add_argument(
        "--runbook-url", metavar="URL", help="the runbook the alerts link to (default: RUNBOOK.md, this repository's)"
    )


def run(args: argparse.Namespace) -> int:
    settings = Settings.load(strict=True)
    path = args.file or settings.budgets
    if not path:
        raise AimonConfigError("give a budgets file or set AIMON_BUDGETS")
    budgets = load_budgets(path)
    if args.budgets_command == "check":
        return _check(args, budgets)
    if args.budgets_command == "status":
        return _status(args, budgets, settings)
    return _render(args, budgets)


def _check(args: argparse.Namespace, budgets: BudgetsFile) -> int:
    rows: list[dict[str, Any]] = [
        {
            "name": b.name,
            "match": dict(b.match),
            "for_each": b.for_each,
            "limit": float(b.limit_usd) if b.limit_usd is not None else b.limit_tokens,
            "unit": b.unit,
            "period": b.period.text,
            "warn_at": list(b.warn_at),
            "action": b.action,
            "notify": list(b.notify),
        }
        for b in budgets.budgets
    ]
    if args.json:
        print(
            json.dumps({"file": budgets.path, "ok": True, "timezone": str(budgets.timezone), "budgets": rows}, indent=2)
        )
        return 0
    print(f"{budgets.path}: OK, {len(rows)} budgets, periods in {budgets.timezone}")
    for budget in budgets.budgets:
        scope = ", ".join(f"{k}={v}" for k, v in budget.match) or "all spend"
        each = f", each {budget.for_each}" if budget.for_each else ""
        limit = f"${budget.limit_usd:,.2f}" if budget.limit_usd is not None else f"{budget.limit_tokens:,} tokens"
        print(f"  {budget.name}: {limit} per {budget.period.text} ({scope}{each}); {budget.action}")
    return 0


def _status(args: argparse.Namespace, budgets: BudgetsFile, settings: Settings) -> int:
    url = args.ledger or settings.budget_ledger
    if url == "memory":
        raise AimonConfigError(
            "the memory ledger lives inside the app's process; give --ledger redis://... (or set AIMON_BUDGET_LEDGER) "
            "to read the shared ledger, or call aimon_otel.budget_status() in the app"
        )
    ledger = open_ledger(url, fail="closed")
    try:
        values = {field: getattr(args, flag) for flag, field in _FIELD_FLAGS.items() if getattr(args, flag)}
        hash_user = user_id_hasher(settings)
        if "user_id" in values and hash_user is not None:  # --user takes the raw id
            values["user_id"] = hash_user(values["user_id"]) or ""
        statuses = Guard(budgets, ledger).status(every_key=True, **values)
    finally:
        ledger.close()
    if args.json:
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
        return 0
    if not statuses:
        print("no budget applies" + (" to " + ", ".join(f"{k}={v}" for k, v in values.items()) if values else ""))
        return 0
    print(_table(statuses))
    return 1 if any(s.state == "over" for s in statuses) else 0


def _table(statuses: list[BudgetStatus]) -> str:
    header = ("budget", "key", "spent", "limit", "used", "state", "period", "resets")
    rows = [header] + [
        (
            s.budget,
            s.key or "-",
            _amount(s.spent, s.unit),
            _amount(s.limit, s.unit),
            f"{s.fraction:.1%}",
            s.state,
            s.period,
            s.resets_at.strftime("%Y-%m-%d %H:%M %Z"),
        )
        for s in statuses
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _amount(value: float, unit: str) -> str:
    if unit == "token":
        return f"{value:,.0f} tok"
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.6f}"


def _render(args: argparse.Namespace, budgets: BudgetsFile) -> int:
    rules = render_rules_yaml(budgets, Links.checked(args.grafana_url, args.runbook_url))
    _write(args.rules, rules)
    if args.alertmanager:
        base = Path(args.alertmanager)
        try:
            text = base.read_text(encoding="utf-8")
        except OSError as exc:
            raise AimonConfigError(f"{base}: cannot read the Alertmanager config ({exc.strerror})") from None
        _write(args.alertmanager_out, render_alertmanager_yaml(budgets, text, str(base)))
    elif args.alertmanager_out:
        raise AimonConfigError("--alertmanager-out needs --alertmanager BASE (the config to add the routes to)")
    return 0


def _write(path: str | None, text: str) -> None:
    if path:
        Path(path).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
