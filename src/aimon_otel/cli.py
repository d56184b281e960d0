"""``aimon-otel``: prices and costs, pricing file checks, API key fingerprints, budgets, spend reports."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aimon_otel.attribution.privacy import key_fingerprint
from aimon_otel.backend.report import GROUPS, Prometheus, spinner
from aimon_otel.backend.report import build as build_report
from aimon_otel.backend.report import render as render_report
from aimon_otel.budgets import commands as budget_commands
from aimon_otel.config import KEY_SALT_ENV, Settings
from aimon_otel.errors import AimonConfigError
from aimon_otel.pricing import PricingEngine, load_overrides
from aimon_otel.pricing.freshness import STALE_AFTER_DAYS, price_data, stale_warnings
from aimon_otel.pricing.overrides import Overrides
from aimon_otel.pricing.result import usd


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aimon-otel", description="LLM prices and costs, as aimon-otel computes them")
    commands = parser.add_subparsers(dest="command", required=True)

    price = commands.add_parser("price", help="the price of a model (USD per million tokens)")
    price.add_argument("model")
    _common(price)

    cost = commands.add_parser("cost", help="the cost of one call")
    cost.add_argument("model")
    _common(cost)
    for name in ("input", "output", "cache-read", "cache-write", "cache-write-1h", "reasoning"):
        cost.add_argument(f"--{name}", type=_count, default=None, metavar="TOKENS")

    pricing = commands.add_parser("pricing", help="pricing files")
    pricing_commands = pricing.add_subparsers(dest="pricing_command", required=True)
    check = pricing_commands.add_parser(
        "check", help="validate an override file (default: $AIMON_PRICING_FILE) and say how old the prices are"
    )
    check.add_argument("file", nargs="?")
    check.add_argument(
        "--stale-after",
        type=_days,
        default=STALE_AFTER_DAYS,
        metavar="DAYS",
        help=f"warn about prices older than this (default: {STALE_AFTER_DAYS})",
    )
    check.add_argument("--strict", action="store_true", help="exit 1 on a warning too (for CI)")
    check.add_argument("--json", action="store_true")
    diff = pricing_commands.add_parser(
        "diff", help="the price changes between two genai-prices data files ('bundled': the installed package's)"
    )
    diff.add_argument("old", help="a data file (JSON, as genai-prices' updater fetches), or bundled")
    diff.add_argument("new", help="a data file, or bundled")
    diff.add_argument("--json", action="store_true")
    pricing_commands.add_parser(
        "export",
        help="the installed genai-prices' data as the JSON its updater fetches (to diff two versions: export "
        "from each one's environment, then pricing diff the files)",
    )

    key_id = commands.add_parser(
        "key-id", help="the aimon.api_key.id an API key is recorded as (needs the deployment's AIMON_KEY_SALT)"
    )
    key_id.add_argument("key", help="the API key, or - to read it from stdin (keeps it out of shell history)")

    budget_commands.add_parsers(commands)

    billing = commands.add_parser("billing", help="usage events for the billing system")
    billing_commands = billing.add_subparsers(dest="billing_command", required=True)
    spool = billing_commands.add_parser("spool", help="the usage events waiting to be sent, per customer")
    spool.add_argument("--spool", help="the spool file (default: $AIMON_BILLING_SPOOL, else the cache directory's)")
    spool.add_argument("--json", action="store_true")
    reconcile = billing_commands.add_parser(
        "reconcile", help="what the billing system received per tenant, against the spend Prometheus holds"
    )
    reconcile.add_argument("--prometheus", required=True, metavar="URL", help="e.g. http://localhost:9090")
    reconcile.add_argument("--from", dest="start", required=True, type=_day, metavar="YYYY-MM-DD", help="first day")
    reconcile.add_argument(
        "--to", dest="end", required=True, type=_day, metavar="YYYY-MM-DD", help="the day after the last"
    )
    reconcile.add_argument("--spool", action="append", help="a spool file (several: each host's); default as above")
    reconcile.add_argument("--tolerance", type=float, default=1.0, metavar="PERCENT", help="allowed gap (default 1)")
    reconcile.add_argument("--json", action="store_true")

    report = commands.add_parser("report", help="spend, calls and tokens per group and day or month, from Prometheus")
    report.add_argument("--prometheus", required=True, metavar="URL", help="e.g. http://localhost:9090")
    report.add_argument("--from", dest="start", required=True, type=_day, metavar="YYYY-MM-DD", help="first day")
    report.add_argument(
        "--to", dest="end", required=True, type=_day, metavar="YYYY-MM-DD", help="the day after the last"
    )
    report.add_argument("--by", default="tenant", help=f"comma-separated, of {', '.join(GROUPS)} (default: tenant)")
    report.add_argument("--step", choices=["day", "month"], default="day")
    report.add_argument("--format", choices=["table", "csv", "json"], default="table")
    report.add_argument("--timezone", default="UTC", help="calendar days and months in this zone (default: UTC)")

    args = parser.parse_args(argv)
    try:
        if args.command == "budgets":
            return budget_commands.run(args)
        if args.command == "credits":
            return budget_commands.run_credits(args)
        if args.command == "report":
            return _report(args)
        if args.command == "billing":
            return _billing_reconcile(args) if args.billing_command == "reconcile" else _billing_spool(args)
        if args.command == "pricing":
            if args.pricing_command == "export":
                return _export()
            return _diff(args) if args.pricing_command == "diff" else _check(args)
        if args.command == "key-id":
            return _key_id(args)
        engine = _engine(getattr(args, "pricing_file", None))
        args.provider = args.provider or _infer_provider(engine, args.model)
        _check_service_tier(engine, args.service_tier)
        return _price(engine, args) if args.command == "price" else _cost(engine, args)
    except AimonConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--provider",
        default=None,
        help="gen_ai.provider.name or genai-prices provider id (default: inferred from the model name)",
    )
    parser.add_argument(
        "--at", type=_when, default=None, help="date or time of the call, e.g. 2026-06-01 (default: now)"
    )
    parser.add_argument("--service-tier", default=None, help="e.g. flex, priority, batch (default: standard)")
    parser.add_argument("--pricing-file", default=None, help="override file (default: $AIMON_PRICING_FILE)")
    parser.add_argument("--json", action="store_true")


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or time; accepted: 2026-06-01, 2026-06-01T14:30, 2026-06-01T14:30:00+02:00 "
            "(ISO 8601; UTC unless an offset is given)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of tokens") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; token counts are 0 or more")
    return value


def _infer_provider(engine: PricingEngine, model: str) -> str:
    """The provider whose models this name belongs to; asks for ``--provider`` when it is not one."""
    for (provider, name), _ in engine.overrides.models.items():
        if name == model and provider:
            return provider
    candidates = engine.catalog.providers_of(model)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        return "openai"  # reported as unknown_model below, naming the provider tried
    raise AimonConfigError(
        f"model {model!r} is priced by several providers ({', '.join(candidates)}); choose one with --provider"
    )


def _check_service_tier(engine: PricingEngine, tier: str | None) -> None:
    known = engine.catalog.service_tiers()
    if tier is not None and tier not in known:
        raise AimonConfigError(f"unknown --service-tier {tier!r}; accepted: {', '.join(sorted(known))}")


def _engine(path: str | None) -> PricingEngine:
    path = path or Settings.load(strict=True).pricing_file
    return PricingEngine(load_overrides(path) if path else None)


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    print(json.dumps(payload, indent=2) if args.json else text)


def _price(engine: PricingEngine, args: argparse.Namespace) -> int:
    when = args.at or datetime.now(UTC)
    name = engine.overrides.resolve_alias(args.provider, args.model)
    compiled = engine.overrides.custom_price(args.provider, name, when.date())
    source, matched, provider = "override", name, args.provider
    if compiled is None:
        found = engine.catalog.model(args.provider, name)
        if found is None:
            _emit(
                args,
                {"model": args.model, "provider": args.provider, "status": "unknown_model"},
                f"{args.model}: no price known for provider {args.provider}",
            )
            return 1
        compiled = found.price_at(when, (("service_tier", args.service_tier),) if args.service_tier else ())
        source, matched, provider = "genai-prices", found.info.id, found.provider_id
    factor = engine.overrides.factor(args.provider, name)
    units = {
        u.usage_key: {
            "usd_per": u.per,
            "price": str(u.price),
            "tiers": [{"above_input_tokens": s, "price": str(p)} for s, p in u.tiers],
        }
        for u in compiled.units
    }
    payload = {
        "model": args.model,
        "matched": matched,
        "provider": provider,
        "source": source,
        "at": when.isoformat(),
        "multiplier": None if factor is None else str(factor),
        "prices": units,
    }
    _emit(
        args,
        payload,
        f"{matched} ({provider}, {source}, at {when.date()}): {compiled.description}"
        + (f" x{factor}" if factor is not None else ""),
    )
    return 0


def _cost(engine: PricingEngine, args: argparse.Namespace) -> int:
    counts = {
        key: value
        for key, value in {
            "input_tokens": args.input,
            "output_tokens": args.output,
            "cache_read_tokens": args.cache_read,
            "cache_write_tokens": args.cache_write,
            "cache_write_1h_tokens": args.cache_write_1h,
            "output_reasoning_tokens": args.reasoning,
        }.items()
        if value is not None
    }
    result = engine.price_counts(args.provider, args.model, counts, at=args.at, service_tier=args.service_tier)
    if result.total is None:
        why = f" ({_as_flags(result.detail)})" if result.detail else ""
        if result.status.value == "unknown_model":
            why = f" (no price for provider {args.provider}; try --provider or a pricing file)"
        _emit(args, result.as_dict(), f"{args.model}: {result.status.value}{why}")
        return 1
    _emit(
        args,
        result.as_dict(),
        f"${usd(result.total)} ({result.model}, {result.provider}): input ${usd(result.input)}, "
        f"output ${usd(result.output)}, cache read ${usd(result.cache_read)}, cache write ${usd(result.cache_write)}",
    )
    return 0


_FLAGS = {
    "input_tokens": "--input",
    "output_tokens": "--output",
    "cache_read_tokens": "--cache-read",
    "cache_write_tokens": "--cache-write",
    "cache_write_1h_tokens": "--cache-write-1h",
    "output_reasoning_tokens": "--reasoning",
}


def _as_flags(detail: str) -> str:
    """A pricing complaint in the CLI's own words: ``--cache-read exceed --input``."""
    for key, flag in sorted(_FLAGS.items(), key=lambda item: -len(item[0])):
        detail = detail.replace(key, flag)
    return detail


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD, e.g. 2026-10-01") from None


def _report(args: argparse.Namespace) -> int:
    by = [name.strip() for name in args.by.split(",") if name.strip()]
    unknown = [name for name in by if name not in GROUPS]
    if unknown or not by:
        raise AimonConfigError(f"--by {args.by!r}: use a comma-separated list of {', '.join(GROUPS)}")
    if args.end <= args.start:
        raise AimonConfigError(f"--to {args.end} must be after --from {args.start} (--to is the day after the last)")
    try:
        zone = ZoneInfo(args.timezone)
    except (ValueError, ZoneInfoNotFoundError):
        raise AimonConfigError(
            f"--timezone {args.timezone!r} is not a timezone; use e.g. UTC or Europe/Berlin"
        ) from None
    rows = build_report(Prometheus(args.prometheus), args.start, args.end, by, args.step, zone, spinner())
    sys.stdout.write(render_report(rows, by, args.format))
    return 0


def _spool_path(given: str | None) -> str:
    from aimon_otel.billing.setup import default_spool_path

    path = given or os.environ.get("AIMON_BILLING_SPOOL")
    if not path:
        path = str(default_spool_path(os.environ.get("AIMON_BILLING", "lago").strip().lower() or "lago"))
    if not Path(path).exists():
        raise AimonConfigError(f"no billing spool at {path}: give --spool, or set AIMON_BILLING_SPOOL as the app does")
    return path


def _billing_reconcile(args: argparse.Namespace) -> int:
    """Prometheus's spend per tenant against the cost of what the billing system received; 1 on a gap."""
    from decimal import Decimal

    from aimon_otel.backend.alerts import COST, counted_increase
    from aimon_otel.billing.spool import NO_TENANT, Spool

    if args.end <= args.start:
        raise AimonConfigError(f"--to {args.end} must be after --from {args.start} (--to is the day after the last)")
    sent: dict[str, Decimal] = {}
    for given in args.spool or [None]:
        spool = Spool(_spool_path(given), max_events=2**62)
        try:
            for tenant, (_events, cost, _billed) in spool.tally(args.start, args.end).items():
                sent[tenant] = sent.get(tenant, Decimal(0)) + cost
        finally:
            spool.close()
    start = datetime.combine(args.start, datetime.min.time(), UTC)
    end = datetime.combine(args.end, datetime.min.time(), UTC)
    window = f"{int((end - start).total_seconds())}s"
    spent: dict[str, Decimal] = {}
    for sample in Prometheus(args.prometheus).query(counted_increase(COST, window, "tenant_id"), end):
        tenant = sample["metric"].get("tenant_id") or NO_TENANT
        spent[tenant] = spent.get(tenant, Decimal(0)) + Decimal(sample["value"][1])
    rows = []
    for tenant in sorted(spent.keys() | sent.keys()):
        held, billed = spent.get(tenant, Decimal(0)), sent.get(tenant, Decimal(0))
        gap = abs(held - billed) / held * 100 if held else (Decimal(100) if billed else Decimal(0))
        rows.append((tenant, held, billed, gap, gap <= Decimal(str(args.tolerance))))
    payload = {
        "from": args.start.isoformat(),
        "to": args.end.isoformat(),
        "tenants": [
            {"tenant": t, "prometheus_usd": str(h), "sent_usd": str(b), "gap_percent": float(g), "ok": ok}
            for t, h, b, g, ok in rows
        ],
    }
    lines = [f"{'tenant':<20} {'Prometheus':>12} {'sent':>12} {'gap':>8}"]
    for tenant, held, billed, gap, ok in rows:
        flag = "" if ok else f"  over {args.tolerance:g}%: check the customer mapping and the spool"
        lines.append(f"{tenant:<20} {held:>12.4f} {billed:>12.4f} {gap:>7.2f}%{flag}")
    _emit(args, payload, "\n".join(lines))
    return 0 if all(ok for *_, ok in rows) else 1


def _billing_spool(args: argparse.Namespace) -> int:
    from aimon_otel.billing.spool import Spool

    path = _spool_path(args.spool)
    spool = Spool(path, max_events=2**62)
    try:
        groups = spool.summary()
    finally:
        spool.close()

    def when(seconds: object) -> str:
        return datetime.fromtimestamp(float(str(seconds)), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    payload = {
        "spool": path,
        "events": sum(int(str(g["events"])) for g in groups),
        "customers": [{**g, "billed": str(g["billed"])} for g in groups],
    }
    lines = [f"{payload['events']} usage events waiting in {path}"]
    for group in groups:
        amount = f"${group['billed']}" if group["unit"] == "usd" else f"{group['billed']} tokens"
        lines.append(
            f"  {group['customer']}: {group['events']} events, {amount}, calls {when(group['oldest'])} to "
            f"{when(group['newest'])}"
        )
    _emit(args, payload, "\n".join(lines))
    return 0


def _export() -> int:
    from aimon_otel.pricing.data_files import bundled_providers, raw_providers

    json.dump(raw_providers(bundled_providers()), sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")
    return 0


def _diff(args: argparse.Namespace) -> int:
    from aimon_otel.pricing.changes import diff
    from aimon_otel.pricing.data_files import load_providers

    now = datetime.now(UTC)
    changes = diff(load_providers(args.old), load_providers(args.new), now)
    payload = {
        "at": now.isoformat(),
        "changes": [
            {
                "provider": c.provider,
                "model": c.model,
                "kind": c.kind,
                "prices": [{"price": n, "old": old, "new": new} for n, old, new in c.prices],
            }
            for c in changes
        ],
    }
    lines = [change.describe() for change in changes]
    lines.append(f"{len(changes)} models changed" if changes else "no price changed")
    _emit(args, payload, "\n".join(lines))
    return 0


def _check(args: argparse.Namespace) -> int:
    """Validate the override file, if any, and warn about old prices; 1 for alias targets with no price."""
    path = args.file or Settings.load(strict=True).pricing_file
    overrides = load_overrides(path) if path else Overrides()
    engine = PricingEngine(overrides)
    today = datetime.now(UTC).date()
    unknown = [
        {"provider": provider, "model": target}
        for provider, target in overrides.referenced_models()
        if overrides.custom_price(provider or "", target, today) is None
        and engine.catalog.model(provider or "openai", target) is None
    ]
    data = price_data(engine)
    warnings = stale_warnings(data, today, args.stale_after)
    payload = {
        "file": path,
        "ok": not unknown,
        "aliases": len(overrides.aliases),
        "models": len(overrides.models),
        "multipliers": len(overrides.multipliers),
        "unknown_alias_targets": unknown,
        "price_data": [
            {
                "source": d.source,
                "name": d.name,
                "as_of": d.as_of and d.as_of.isoformat(),
                "age_days": d.age_days(today),
            }
            for d in data
        ],
        "warnings": warnings,
    }
    lines = []
    if path:
        lines.append(
            f"{path}: {len(overrides.aliases)} aliases, {len(overrides.models)} models, "
            f"{len(overrides.multipliers)} multipliers"
        )
    for entry in data:
        age = entry.age_days(today)
        lines.append(f"prices: {entry.basis}" + ("" if age is None else f" ({age} days ago)"))
    if unknown:
        lines.append(
            "alias targets with no price: " + ", ".join(f"{u['model']} ({u['provider'] or 'any'})" for u in unknown)
        )
    lines.extend(f"warning: {warning}" for warning in warnings)
    _emit(args, payload, "\n".join(lines))
    return 1 if unknown or (args.strict and warnings) else 0


def _key_id(args: argparse.Namespace) -> int:
    salt = Settings.load(strict=True).key_salt
    if not salt:
        raise AimonConfigError(
            f"{KEY_SALT_ENV} is not set: give it the salt the app runs with "
            f"(e.g. {KEY_SALT_ENV}=... aimon-otel key-id -)"
        )
    key = sys.stdin.readline().strip() if args.key == "-" else args.key.strip()
    if not key:
        raise AimonConfigError("no key given: pass it as an argument, or - and the key on stdin")
    print(key_fingerprint(key, salt))
    return 0


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give 1 day or more")
    return value


if __name__ == "__main__":
    sys.exit(main())
