"""Billing's settings (``AIMON_BILLING_*``, or ``instrument(billing={...})``) and the sink they make.

Every problem names the variable (or keyword) and the fix. Under ``opentelemetry-instrument`` a bad
setting is logged and billing stays off (nothing is sent rather than something wrong); in code it raises.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from aimon_otel.billing.cloudevents import CloudEventsDestination
from aimon_otel.billing.delivery import Destination
from aimon_otel.billing.events import CustomerOf, Unit
from aimon_otel.billing.lago import PUBLIC_API as LAGO_API
from aimon_otel.billing.lago import LagoDestination
from aimon_otel.billing.sender import BillingSink
from aimon_otel.billing.spool import Spool
from aimon_otel.errors import AimonConfigError
from aimon_otel.faults import report_fault

SERVICES = ("lago", "stripe", "cloudevents")
ENVIRONMENT = {
    "service": "AIMON_BILLING",
    "url": "AIMON_BILLING_URL",
    "api_key": "AIMON_BILLING_API_KEY",
    "api_key_file": "AIMON_BILLING_API_KEY_FILE",
    "metric": "AIMON_BILLING_METRIC",
    "customers": "AIMON_BILLING_CUSTOMERS",
    "default_customer": "AIMON_BILLING_DEFAULT_CUSTOMER",
    "unit": "AIMON_BILLING_UNIT",
    "margin": "AIMON_BILLING_MARGIN",
    "spool": "AIMON_BILLING_SPOOL",
    "spool_max_events": "AIMON_BILLING_SPOOL_MAX_EVENTS",
}


@dataclass(frozen=True)
class BillingSettings:
    service: str
    """``lago``, ``stripe`` or ``cloudevents``."""
    metric: str
    """Lago's billable metric code, Stripe's meter event name, the CloudEvents ``type``."""
    url: str | None = None
    """The API base (Lago, Stripe; default: the public one), or the CloudEvents intake URL (required)."""
    api_key: str | None = None
    api_key_file: str | None = None
    customers: str | Callable[[str], str | None] = "identity"
    """``identity`` (the tenant is the customer/subscription id), a YAML file mapping tenant -> id, or a
    function ``module:attr`` (or the callable) taking the tenant."""
    default_customer: str | None = None
    """Who is billed for calls with no tenant, or one the mapping does not know (None: not billed)."""
    unit: str = "usd"
    margin: Decimal | dict[str, Decimal] = Decimal(1)
    """The factor on cost (``usd``), or factors per tenant plan (``{"pro": 1.3, "*": 1.2}``)."""
    spool: str | None = None
    spool_max_events: int = 1_000_000

    def __repr__(self) -> str:  # the key never reaches a log line
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}
        return f"BillingSettings({', '.join(f'{k}={v!r}' for k, v in shown.items())}, api_key=<hidden>)"


def billing_from_environ(env: Mapping[str, str]) -> BillingSettings | None:
    """The settings ``AIMON_BILLING_*`` give, or None when ``AIMON_BILLING`` is unset."""
    raw = {name: env.get(variable, "").strip() for name, variable in ENVIRONMENT.items()}
    if not raw["service"]:
        return None
    values: dict[str, Any] = {name: value for name, value in raw.items() if value}
    return _checked(values, lambda name: f"environment variable {ENVIRONMENT[name]}")


def billing_from_code(value: Any) -> BillingSettings | None:
    """``instrument(billing=...)``: None, a ``BillingSettings``, or a mapping of its fields."""
    if value is None or isinstance(value, BillingSettings):
        return (
            value
            if value is None
            else _checked({f.name: getattr(value, f.name) for f in fields(value)}, lambda name: f"billing {name}")
        )
    if not isinstance(value, Mapping):
        raise AimonConfigError("instrument(billing=...) takes a mapping of billing settings or a BillingSettings")
    known = {f.name for f in fields(BillingSettings)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise AimonConfigError(f"instrument(billing=...) got unknown setting(s) {unknown}; known: {sorted(known)}")
    return _checked(dict(value), lambda name: f"instrument(billing={{{name!r}: ...}})")


def _checked(values: dict[str, Any], where: Callable[[str], str]) -> BillingSettings:
    service = str(values.get("service", "")).lower()
    if service not in SERVICES:
        raise AimonConfigError(f"{where('service')}={values.get('service')!r}: billing goes to one of {list(SERVICES)}")
    metric = values.get("metric")
    if not metric:
        raise AimonConfigError(
            f"{where('metric')} is required with billing: the Lago billable metric code, the Stripe meter's event "
            "name or the CloudEvents type, exactly as the billing system has it"
        )
    unit = str(values.get("unit", "usd")).lower()
    if unit not in ("usd", "tokens"):
        raise AimonConfigError(f"{where('unit')}={values.get('unit')!r}: bill in 'usd' (cost x margin) or 'tokens'")
    margin = _margin(values.get("margin", 1), where("margin"))
    try:
        cap = int(values.get("spool_max_events", 1_000_000))
    except (TypeError, ValueError):
        cap = 0
    if cap < 1:
        raise AimonConfigError(f"{where('spool_max_events')}={values.get('spool_max_events')!r}: a whole number >= 1")
    if service == "cloudevents" and not values.get("url"):
        raise AimonConfigError(f"{where('url')} is required for CloudEvents: the intake's URL (e.g. OpenMeter's)")
    api_key = values.get("api_key")
    key_file = values.get("api_key_file")
    if not api_key and key_file:
        try:
            api_key = Path(key_file).read_text().strip()
        except OSError as error:
            raise AimonConfigError(f"{where('api_key_file')}={key_file!r} cannot be read: {error.strerror}") from None
    if service in ("lago", "stripe") and not api_key:
        raise AimonConfigError(
            f"{where('api_key')} (or {where('api_key_file')}) is required for {service}: "
            "the API key the events are sent with"
        )
    return replace(
        BillingSettings(service=service, metric=str(metric)),
        url=values.get("url"),
        api_key=api_key,
        api_key_file=key_file,
        customers=values.get("customers", "identity"),
        default_customer=values.get("default_customer"),
        unit=unit,
        margin=margin,
        spool=values.get("spool"),
        spool_max_events=cap,
    )


def _margin(given: Any, where: str) -> Decimal | dict[str, Decimal]:
    """A factor (``1.2``), or factors per plan (``pro=1.3,free=1,*=1.2``; ``*``: any other plan or none)."""
    if isinstance(given, Mapping) or (isinstance(given, str) and "=" in given):
        pairs = (
            given.items() if isinstance(given, Mapping) else (p.split("=", 1) for p in given.split(",") if p.strip())
        )
        found = {str(plan).strip(): _factor(value, where, given) for plan, value in pairs}
        if not found:
            raise AimonConfigError(f"{where}={given!r}: give a factor, or plan=factor pairs such as pro=1.3,*=1.2")
        return found
    return _factor(given, where, given)


def _factor(value: Any, where: str, given: Any) -> Decimal:
    try:
        factor = Decimal(str(value).strip())
    except InvalidOperation:
        factor = Decimal(-1)
    if not factor.is_finite() or factor <= 0:
        raise AimonConfigError(
            f"{where}={given!r}: a positive factor, e.g. 1.2 for 20% on top, or per plan: pro=1.3,free=1,*=1.2"
        )
    return factor


def margin_for(
    settings: BillingSettings, plans: Callable[[], Mapping[str, str]] | None
) -> Callable[[str | None], Decimal]:
    """The factor on a tenant's cost: the same for all, or its plan's (plans read at most every 30 s)."""
    margin = settings.margin
    if isinstance(margin, Decimal):
        return lambda tenant: margin
    default = margin.get("*", Decimal(1))
    cache: list[Any] = [0.0, {}]

    def of(tenant: str | None) -> Decimal:
        if plans is None or tenant is None:
            return default
        if time.monotonic() - cache[0] > 30:
            try:
                cache[1] = dict(plans())
            except Exception as fault:  # the ledger is away: the last plans known
                report_fault("billing plans", fault)
            cache[0] = time.monotonic()
        plan = cache[1].get(tenant)
        return margin.get(plan, default) if plan is not None else default

    return of


def customer_mapping(settings: BillingSettings) -> CustomerOf:
    """Tenant (or None) -> customer/subscription id, or None: not billed."""
    spec = settings.customers
    default = settings.default_customer
    if callable(spec):
        found: Callable[[str], str | None] = spec
    elif spec == "identity":

        def found(tenant: str) -> str | None:
            return tenant

    elif ":" in spec and not Path(spec).exists():
        found = _function(spec)
    else:
        table = _table(spec)
        found = table.get

    def customer_of(tenant: str | None) -> str | None:
        if tenant is None:
            return default
        customer = found(tenant)
        return customer if isinstance(customer, str) and customer else default

    return customer_of


def _function(spec: str) -> Callable[[str], str | None]:
    module_name, _, attribute = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise AimonConfigError(
            f"AIMON_BILLING_CUSTOMERS={spec!r} cannot be loaded ({error}); give a YAML file, 'identity', or "
            "module:function taking the tenant and returning its customer id"
        ) from None
    if not callable(function):
        raise AimonConfigError(f"AIMON_BILLING_CUSTOMERS={spec!r} is not a function")
    return function  # type: ignore[no-any-return]


def _table(path: str) -> dict[str, str]:
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise AimonConfigError(f"AIMON_BILLING_CUSTOMERS file {path}: cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise AimonConfigError(f"AIMON_BILLING_CUSTOMERS file {path}: not YAML ({error})") from None
    if not isinstance(loaded, dict) or not all(
        isinstance(k, (str, int)) and isinstance(v, (str, int)) for k, v in loaded.items()
    ):
        raise AimonConfigError(
            f"AIMON_BILLING_CUSTOMERS file {path}: must be a flat mapping 'tenant: customer-or-subscription-id'"
        )
    return {str(k): str(v) for k, v in loaded.items()}


def default_spool_path(service: str) -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "aimon-otel" / f"billing-{service}.sqlite3"


def destination_for(settings: BillingSettings) -> Destination:
    try:
        return _destination(settings)
    except ValueError as error:
        raise AimonConfigError(f"AIMON_BILLING_URL: {error}; give http(s)://host[:port][/path]") from None


def _destination(settings: BillingSettings) -> Destination:
    key = settings.api_key or ""
    if settings.service == "lago":
        return LagoDestination(settings.url or LAGO_API, key, settings.metric)
    if settings.service == "stripe":
        from aimon_otel.billing.stripe_meter import PUBLIC_API as STRIPE_API
        from aimon_otel.billing.stripe_meter import StripeMeterDestination

        try:
            return StripeMeterDestination(settings.url or STRIPE_API, key, settings.metric)
        except ImportError:
            raise AimonConfigError(
                "AIMON_BILLING=stripe needs the stripe SDK: pip install 'aimon-otel[stripe]'"
            ) from None
    return CloudEventsDestination(settings.url or "", settings.api_key, settings.metric, "aimon-otel")


def open_billing(
    settings: BillingSettings, meter: Any, plans: Callable[[], Mapping[str, str]] | None = None
) -> BillingSink:
    """The sink the settings describe; its spool's waiting events are sent first. ``plans``: tenant -> plan
    (the budgets' plans), for margins per plan."""
    unit: Unit = "tokens" if settings.unit == "tokens" else "usd"
    customer_of = customer_mapping(settings)
    destination = destination_for(settings)
    path = Path(settings.spool) if settings.spool else default_spool_path(settings.service)
    try:
        spool = Spool(path, settings.spool_max_events)
    except Exception as error:  # sqlite3.Error, OSError
        raise AimonConfigError(f"AIMON_BILLING_SPOOL={str(path)!r}: the spool cannot be opened ({error})") from None
    return BillingSink(destination, spool, customer_of, unit, margin_for(settings, plans), meter)
