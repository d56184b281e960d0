"""``aimon-otel budgets check | status | render``: the budgets file from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aimon_otel.attribution.privacy import user_id_hasher
from aimon_otel.backend.alerts import Links
from aimon_otel.budgets.credits import Credits
from aimon_otel.budgets.guard import BudgetStatus, Guard
from aimon_otel.budgets.ledger import Ledger
from aimon_otel.budgets.limits import LimitSet, PlanSet, RunTimeLimits
from aimon_otel.budgets.rules import render_alertmanager_yaml, render_rules_yaml
from aimon_otel.budgets.setup import open_ledger
from aimon_otel.budgets.spec import NANO, BudgetsFile, load_budgets
from aimon_otel.config import Settings
from aimon_otel.errors import AimonConfigError

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

    def shared(parser: Any) -> None:
        parser.add_argument("--file", dest="file", help="the budgets file (default: $AIMON_BUDGETS)")
        parser.add_argument(
            "--ledger", help="the shared ledger URL (default: $AIMON_BUDGET_LEDGER), e.g. redis://localhost:6379/0"
        )

    def audited(parser: Any) -> None:
        parser.add_argument("--by", help="who makes the change (default: the OS user)")
        parser.add_argument("--reason", default="", help="why, for the audit trail (a ticket, a payment...)")

    set_plan = budget_commands.add_parser(
        "set-plan", help="put a key on a plan (or --clear it): applies to every process at its next call"
    )
    for flag in _FIELD_FLAGS:
        set_plan.add_argument(f"--{flag}", help=f"the {flag} whose plan this is")
    set_plan.add_argument("plan", nargs="?", help="a plan the budgets file lists under plans:")
    set_plan.add_argument("--clear", action="store_true", help="take the key off any plan")
    shared(set_plan)
    audited(set_plan)

    set_limit = budget_commands.add_parser("set-limit", help="one key's own limit in a budget, until a date")
    set_limit.add_argument("budget")
    set_limit.add_argument("--key", help="the for_each value (a tenant, a user...); none for a budget without")
    amount = set_limit.add_mutually_exclusive_group(required=True)
    amount.add_argument("--usd", help="the limit in dollars (a limit_usd budget)")
    amount.add_argument("--tokens", type=int, help="the limit in tokens (a limit_tokens budget)")
    set_limit.add_argument(
        "--until", help="a date (through that day) or time, in the file's timezone; default: the period's end"
    )
    shared(set_limit)
    audited(set_limit)

    clear_limit = budget_commands.add_parser("clear-limit", help="drop a key's own limit")
    clear_limit.add_argument("budget")
    clear_limit.add_argument("--key")
    shared(clear_limit)
    audited(clear_limit)

    limits = budget_commands.add_parser("limits", help="the per-key limits in force and the keys' plans")
    limits.add_argument("--budget")
    limits.add_argument("--json", action="store_true")
    shared(limits)

    history = budget_commands.add_parser("history", help="the audit trail of plan and limit changes")
    history.add_argument("--budget")
    history.add_argument("--key")
    history.add_argument("--json", action="store_true")
    shared(history)

    credits = commands.add_parser("credits", help="prepaid credit balances: add (top up), balance, history")
    credit_commands = credits.add_subparsers(dest="credits_command", required=True)
    add = credit_commands.add_parser("add", help="top up a balance once per --reference (negative: a refund)")
    add.add_argument("budget", help="a credits: true budget")
    add.add_argument("--key", help="the for_each value (a tenant...); none for a budget without")
    add.add_argument("--usd", required=True, help="the amount in dollars")
    add.add_argument("--reference", required=True, help="the payment id: sent twice, it is added once")
    shared(add)
    audited(add)
    balance = credit_commands.add_parser("balance", help="a balance")
    balance.add_argument("budget")
    balance.add_argument("--key")
    balance.add_argument("--json", action="store_true")
    shared(balance)
    credit_history = credit_commands.add_parser("history", help="top-ups and refunds, newest first")
    credit_history.add_argument("budget", nargs="?")
    credit_history.add_argument("--key")
    credit_history.add_argument("--json", action="store_true")
    shared(credit_history)

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
    if args.budgets_command in _RUN_TIME:
        return _run_time(args, budgets, settings)
    return _render(args, budgets)


_RUN_TIME = ("set-plan", "set-limit", "clear-limit", "limits", "history")


def run_credits(args: argparse.Namespace) -> int:
    """``aimon-otel credits add|balance|history`` on the shared ledger."""
    settings = Settings.load(strict=True)
    path = args.file or settings.budgets
    if not path:
        raise AimonConfigError("give --file BUDGETS_FILE or set AIMON_BUDGETS")
    budgets = load_budgets(path)
    ledger = _shared_ledger(args, settings, f"credits {args.credits_command}", "add_credits()/credit_balance()")
    try:
        credits = Credits(Guard(budgets, ledger))
        if args.credits_command == "add":
            done = credits.add(args.budget, args.key, usd=args.usd, reference=args.reference, reason=args.reason,
                               by=args.by)  # fmt: skip
            verb = "added" if done.added else "already added (same reference): nothing added again"
            print(f"{done.budget} {done.key or '-'}: {_amount(abs(done.amount_usd), 'USD')} {verb}; "
                  f"balance {_amount(done.balance_usd, 'USD')}")  # fmt: skip
            return 0
        if args.credits_command == "balance":
            value = credits.balance(args.budget, args.key)
            print(json.dumps({"budget": args.budget, "key": args.key or "", "balance_usd": value}) if args.json
                  else f"{args.budget} {args.key or '-'}: {_amount(value, 'USD')}")  # fmt: skip
            return 0
        entries = credits.history(args.budget, args.key)
        if args.json:
            print(json.dumps(entries, indent=2))
        for entry in [] if args.json else entries:
            print(f"{entry['at']}  {entry['budget']} {entry['key'] or '-'}: {entry['amount']:+,.2f} USD "
                  f"({entry['reference']}) -> balance {entry['balance']:,.2f} by {entry['by']}")  # fmt: skip
        return 0
    finally:
        ledger.close()


def _in(units: int, unit: str) -> float | int:
    return units / NANO if unit == "USD" else units


def _shared_ledger(args: argparse.Namespace, settings: Settings, verb: str, in_app: str) -> Ledger:
    url = args.ledger or settings.budget_ledger
    if url == "memory":
        raise AimonConfigError(
            f"{verb} needs the shared ledger the apps use: give --ledger redis://... (or set AIMON_BUDGET_LEDGER); "
            f"with the memory ledger, call aimon_otel.{in_app} in the app"
        )
    return open_ledger(url, fail="closed")


def _run_time(args: argparse.Namespace, budgets: BudgetsFile, settings: Settings) -> int:
    """Plans, per-key limits and their audit trail, in the shared ledger the apps read."""
    url = args.ledger or settings.budget_ledger
    if url == "memory":
        raise AimonConfigError(
            f"budgets {args.budgets_command} needs the shared ledger the apps use: give --ledger redis://... (or "
            "set AIMON_BUDGET_LEDGER); with the memory ledger, call aimon_otel.set_plan()/set_limit() in the app"
        )
    ledger = open_ledger(url, fail="closed")
    try:
        limits = RunTimeLimits(Guard(budgets, ledger))
        return _run_time_command(args, limits, settings)
    finally:
        ledger.close()


def _run_time_command(args: argparse.Namespace, limits: RunTimeLimits, settings: Settings) -> int:
    command = args.budgets_command
    if command == "set-plan":
        given = [(field, getattr(args, flag)) for flag, field in _FIELD_FLAGS.items() if getattr(args, flag)]
        if len(given) != 1:
            raise AimonConfigError("give exactly one of --tenant, --user, --feature, --agent, --provider, --model")
        if args.clear == (args.plan is not None):
            raise AimonConfigError("give a plan (e.g. pro) or --clear, not both and not neither")
        ((field, key),) = given
        hash_user = user_id_hasher(settings)
        if field == "user_id" and hash_user is not None:  # --user takes the raw id
            key = hash_user(key) or ""
        limits.set_plan(field, key, None if args.clear else args.plan, by=args.by, reason=args.reason)
        print(f"{field} {key}: " + ("no plan" if args.clear else f"plan {args.plan}"))
        return 0
    if command == "set-limit":
        limit = limits.set_limit(
            args.budget, args.key, limit_usd=args.usd, limit_tokens=args.tokens, until=args.until,
            reason=args.reason, by=args.by,
        )  # fmt: skip
        print(f"{limit.budget} {limit.key or '-'}: {_amount(limit.limit, limit.unit)} until {limit.until.isoformat()}")
        return 0
    if command == "clear-limit":
        cleared = limits.clear_limit(args.budget, args.key, by=args.by, reason=args.reason)
        print(f"{args.budget} {args.key or '-'}: " + ("limit cleared" if cleared else "had no limit of its own"))
        return 0
    if command == "limits":
        found: list[LimitSet | PlanSet] = [*limits.limits(args.budget), *([] if args.budget else limits.plans())]
        if args.json:
            print(json.dumps([item.as_dict() for item in found], indent=2))
        for item in [] if args.json else found:
            if isinstance(item, LimitSet):
                print(
                    f"limit  {item.budget} {item.key or '-'}: {_amount(item.limit, item.unit)} until "
                    f"{item.until.isoformat()} by {item.by}" + (f" ({item.reason})" if item.reason else "")
                )
            else:
                print(
                    f"plan   {item.field} {item.key}: {item.plan} by {item.by}"
                    + (f" ({item.reason})" if item.reason else "")
                )
        return 0
    entries = limits.history(args.budget, args.key)
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for entry in entries:
        print(
            f"{entry['at']}  {entry['event']}  {entry.get('budget', '')} {entry.get('key', '')}: "
            f"{_side(entry.get('old'))} -> {_side(entry.get('new'))} by {entry['by']}"
            + (f" ({entry['reason']})" if entry.get("reason") else "")
        )
    return 0


def _side(value: Any) -> str:
    if value is None:
        return "none"
    if "plan" in value:
        return f"plan {value['plan']}"
    return f"{_amount(float(value['limit']), value.get('unit', 'USD'))} until {value.get('until', '?')}"


def _check(args: argparse.Namespace, budgets: BudgetsFile) -> int:
    rows: list[dict[str, Any]] = [
        {
            "name": b.name,
            "match": dict(b.match),
            "for_each": b.for_each,
            "limit": float(b.limit_usd) if b.limit_usd is not None else b.limit_tokens,
            "unit": b.unit,
            **({"plans": {plan: _in(units, b.unit) for plan, units in b.plans}} if b.plans else {}),
            **(
                {
                    "credits": True,
                    "overdraft_usd": b.overdraft_units / NANO,
                    "warn_below_usd": [m / NANO for m in b.warn_below],
                }
                if b.credits
                else {}
            ),
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
        if budget.credits:
            print(f"  {budget.name}: prepaid credits ({scope}{each}); {budget.action}")
            continue
        limit = f"${budget.limit_usd:,.2f}" if budget.limit_usd is not None else f"{budget.limit_tokens:,} tokens"
        plans = ", plans " + ", ".join(p for p, _ in budget.plans) if budget.plans else ""
        print(f"  {budget.name}: {limit} per {budget.period.text} ({scope}{each}{plans}); {budget.action}")
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
    header = ("budget", "key", "spent", "limit", "from", "used", "state", "period", "resets")
    rows = [header] + [
        (
            s.budget,
            s.key or "-",
            _amount(s.spent, s.unit),
            _amount(s.limit, s.unit),
            s.limit_source,
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
