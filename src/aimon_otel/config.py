"""Settings read once from the environment (OpenTelemetry style), each also settable in code.

Two policies, one message. Environment variables are what ``opentelemetry-instrument`` users
set: a bad value there must never make the agent skip the instrumentors loaded after ours, so
it is logged once (the variable, the value, what is accepted, the default used) and the default
applies. Keyword arguments given in code, and the CLI, are strict: the same message is raised
as :class:`AimonConfigError`. An empty variable means unset.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from aimon_otel.errors import AimonConfigError
from aimon_otel.faults import warn_once

if TYPE_CHECKING:
    from aimon_otel.billing.setup import BillingSettings

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
CONTENT_MAX_CHARS_ENV = "AIMON_CAPTURE_CONTENT_MAX_CHARS"
STREAM_USAGE_ENV = "AIMON_OPENAI_STREAM_USAGE"
PRICING_FILE_ENV = "AIMON_PRICING_FILE"
METRICS_INCLUDE_USER_ENV = "AIMON_METRICS_INCLUDE_USER"
TENANT_RESOLVER_ENV = "AIMON_TENANT_RESOLVER"
ENRICH_SPANS_ENV = "AIMON_ENRICH_SPANS"
METRICS_MAX_VALUES_ENV = "AIMON_METRICS_MAX_VALUES"
INSTRUMENT_ENV = "AIMON_INSTRUMENT"
BUDGETS_ENV = "AIMON_BUDGETS"
BUDGET_LEDGER_ENV = "AIMON_BUDGET_LEDGER"
BUDGET_FAIL_ENV = "AIMON_BUDGET_FAIL"
USER_ID_HASH_ENV = "AIMON_USER_ID_HASH"
USER_ID_KEY_ENV = "AIMON_USER_ID_KEY"
KEY_SALT_ENV = "AIMON_KEY_SALT"
BILLING_ENV = "AIMON_BILLING"
PRICES_UPDATE_ENV = "AIMON_PRICES_UPDATE"
PRICES_URL_ENV = "AIMON_PRICES_URL"
BALANCES_ENV = "AIMON_PROVIDER_BALANCES"
BALANCES_INTERVAL_ENV = "AIMON_PROVIDER_BALANCES_INTERVAL"
BALANCE_PROVIDERS = ("openrouter", "deepseek")

SDKS = ("openai", "anthropic", "google-genai", "bedrock", "groq", "mistralai", "ollama", "cohere", "litellm")
"""The SDKs aimon-otel can instrument, by the names ``AIMON_INSTRUMENT`` takes."""

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
# The GenAI conventions' values (opentelemetry-util-genai): content on spans, in events, both, or none.
# aimon-otel records content on spans only; EVENT_ONLY therefore records none on spans.
_CONTENT_MODES = {"span_only": True, "span_and_event": True, "event_only": False, "no_content": False}


@dataclass(frozen=True)
class Settings:
    capture_content: bool = False
    """Record prompts and responses as ``gen_ai.input.messages`` / ``gen_ai.output.messages``."""
    content_max_chars: int = 8192
    """Each recorded text part is cut to this many characters."""
    openai_stream_usage: bool = True
    """Ask OpenAI-compatible streams for a usage chunk (and hide it from the caller)."""
    pricing_file: str | None = None
    """A YAML or TOML file of price overrides (custom models, aliases, multipliers)."""
    metrics_include_user: bool = False
    """Put ``user.id`` on metrics too (unbounded cardinality: opt in deliberately)."""
    tenant_resolver: str | Callable[[], Any] | None = None
    """``module:function`` (or, in code, a function) returning the current tenant (or a mapping) when none is set."""
    enrich_spans: bool = True
    """Wrap the tracer provider's span processors so other instrumentations' GenAI spans get priced."""
    metrics_max_values: int = 1000
    """Distinct values per metric attribute (model, tenant, feature, user) before new ones become ``_other``."""
    instrument: tuple[str, ...] = SDKS
    """Which SDKs to instrument (``AIMON_INSTRUMENT=openai,anthropic``)."""
    budgets: str | None = None
    """A budgets file (``AIMON_BUDGETS``): the guard refuses calls over ``block`` budgets and counts all spend."""
    budget_ledger: str = "memory"
    """Where spend is counted: ``memory`` (one process) or a ``redis://`` / ``rediss://`` URL (shared)."""
    budget_fail: str = "open"
    """When the shared ledger is unreachable: ``open`` lets calls through (counted locally, flushed later),
    ``closed`` refuses them."""
    user_id_hash: str | None = None
    """``hmac-sha256``: ``user.id`` is hashed with ``user_id_key`` before it leaves the process (spans, metrics,
    ledger keys). Without a key, user ids are left out entirely rather than recorded raw."""
    user_id_key: str | None = None
    """The secret key of the user id hash (``AIMON_USER_ID_KEY``); never logged."""
    key_salt: str | None = None
    """A secret of the deployment (``AIMON_KEY_SALT``): with it, each call carries ``aimon.api_key.id``, an HMAC
    fingerprint of the API key the client used, so spend can be split by key; without it, no key id."""
    prices_update: float | None = None
    """Seconds between fetches of genai-prices' latest data (``AIMON_PRICES_UPDATE=1h``); None: the bundled
    prices only, never the network."""
    prices_url: str | None = None
    """Where the data is fetched from (``AIMON_PRICES_URL``, a mirror); None: genai-prices' own URL."""
    provider_balances: tuple[str, ...] = ()
    """Providers whose balance a background poller reads (``openrouter``, ``deepseek``); none by default."""
    provider_balances_interval: float = 300.0
    """Seconds between balance reads (``AIMON_PROVIDER_BALANCES_INTERVAL``: ``5m``, ``30s``, ``1h`` or seconds)."""
    billing: BillingSettings | None = None
    """Usage events to a billing system (``AIMON_BILLING`` and its ``AIMON_BILLING_*``, or ``billing={...}``)."""
    strict: bool = False
    """Raise on every bad value, from the environment too (the CLI)."""
    given_in_code: frozenset[str] = frozenset()
    """Settings passed as keyword arguments: a failure when they are used (a pricing file) raises."""

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, *, strict: bool = False, **overrides: Any) -> Settings:
        """Settings from the environment (lenient unless ``strict``), then keyword arguments given in code (strict)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (variable, parse) in _ENVIRONMENT.items():
            raw = env.get(variable)
            if raw is None or not raw.strip():
                continue
            try:
                values[name] = parse(raw.strip())
            except _RejectedError as rejected:
                message = f"environment variable {variable}={raw!r} {rejected}"
                if strict:
                    raise AimonConfigError(message) from None
                warn_once(
                    ("setting", variable, raw), f"aimon-otel: {message}; using the default, {_default_text(name)}"
                )
        if env.get(BILLING_ENV, "").strip():  # read apart: one setting made of several variables
            values["billing"] = _billing_from(env, strict)
        known = {f.name for f in fields(cls)} - {"strict", "given_in_code"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise AimonConfigError(
                f"AimonInstrumentor.instrument() got unknown setting(s) {unknown}; known settings are {sorted(known)}"
            )
        for name, value in overrides.items():
            try:
                values[name] = _CODE[name](value)
            except _RejectedError as rejected:
                raise AimonConfigError(f"AimonInstrumentor.instrument({name}={value!r}): {rejected}") from None
        settings = replace(cls(), **values, strict=strict, given_in_code=frozenset(overrides))
        if settings.user_id_hash and not settings.user_id_key:
            message = (
                f"{USER_ID_HASH_ENV}=hmac-sha256 needs a secret key in {USER_ID_KEY_ENV} (or user_id_key= in code); "
                "until it is set, user ids are left out of telemetry rather than recorded unhashed"
            )
            if strict or "user_id_hash" in overrides:
                raise AimonConfigError(message)
            warn_once(("setting", USER_ID_KEY_ENV), f"aimon-otel: {message}")
        return settings


def _billing_from(env: Mapping[str, str], strict: bool) -> Any:
    from aimon_otel.billing.setup import billing_from_environ  # only when billing is asked for

    try:
        return billing_from_environ(env)
    except AimonConfigError as error:
        if strict:
            raise
        warn_once(("setting", BILLING_ENV, str(error)), f"aimon-otel: {error}; billing stays off (nothing is sent)")
        return None


def _code_billing(value: Any) -> Any:
    from aimon_otel.billing.setup import billing_from_code

    return billing_from_code(value)


class _RejectedError(ValueError):
    """A value a parser cannot use; its text says what is accepted."""


def _flag(raw: str) -> bool:
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _RejectedError("is not a boolean; accepted: 'true' or 'false' (also 1/0, yes/no, on/off)")


def _content(raw: str) -> bool:
    value = raw.lower()
    if value in _CONTENT_MODES:
        return _CONTENT_MODES[value]
    try:
        return _flag(raw)
    except _RejectedError:
        raise _RejectedError(
            "is not accepted; accepted: 'true', 'false', or one of the GenAI conventions' modes "
            "SPAN_ONLY, SPAN_AND_EVENT, EVENT_ONLY, NO_CONTENT"
        ) from None


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise _RejectedError("must be a positive whole number, e.g. 1000")
    return value


def _text(raw: str) -> str:
    return raw


_LEDGER_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://")


def _ledger(raw: str) -> str:
    if raw == "memory" or raw.startswith(_LEDGER_SCHEMES):
        return raw
    raise _RejectedError(
        "is not a ledger; accepted: 'memory' (the default, one process) or a Redis URL such as "
        "redis://localhost:6379/0, rediss://..., unix:///path/redis.sock, "
        "redis+sentinel://host:26379/service-name/0 or redis+cluster://host:7000"
    )


def _user_id_hash(raw: str) -> str:
    if raw.lower() == "hmac-sha256":
        return "hmac-sha256"
    raise _RejectedError("is not accepted; accepted: 'hmac-sha256' (with AIMON_USER_ID_KEY), or unset")


def _fail_mode(raw: str) -> str:
    value = raw.lower()
    if value in ("open", "closed"):
        return value
    raise _RejectedError("is not accepted; accepted: 'open' (let calls through) or 'closed' (refuse them)")


def _sdks(raw: str) -> tuple[str, ...]:
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in SDKS]
    if unknown:
        raise _RejectedError(f"names unknown SDK(s) {unknown}; accepted: a comma-separated list of {list(SDKS)}")
    return tuple(dict.fromkeys(names))


_ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "capture_content": (CAPTURE_CONTENT_ENV, _content),
    "content_max_chars": (CONTENT_MAX_CHARS_ENV, _positive_int),
    "openai_stream_usage": (STREAM_USAGE_ENV, _flag),
    "pricing_file": (PRICING_FILE_ENV, _text),
    "metrics_include_user": (METRICS_INCLUDE_USER_ENV, _flag),
    "tenant_resolver": (TENANT_RESOLVER_ENV, _text),
    "enrich_spans": (ENRICH_SPANS_ENV, _flag),
    "metrics_max_values": (METRICS_MAX_VALUES_ENV, _positive_int),
    "instrument": (INSTRUMENT_ENV, _sdks),
    "budgets": (BUDGETS_ENV, _text),
    "budget_ledger": (BUDGET_LEDGER_ENV, _ledger),
    "budget_fail": (BUDGET_FAIL_ENV, _fail_mode),
    "user_id_hash": (USER_ID_HASH_ENV, _user_id_hash),
    "user_id_key": (USER_ID_KEY_ENV, _text),
    "key_salt": (KEY_SALT_ENV, _text),
    "prices_update": (PRICES_UPDATE_ENV, lambda raw: _interval(raw)),
    "prices_url": (PRICES_URL_ENV, _text),
    "provider_balances": (BALANCES_ENV, lambda raw: _balance_providers(raw)),
    "provider_balances_interval": (BALANCES_INTERVAL_ENV, lambda raw: _interval(raw)),
}


def _balance_providers(raw: str) -> tuple[str, ...]:
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in BALANCE_PROVIDERS]
    if unknown:
        raise _RejectedError(
            f"names provider(s) {unknown} whose balance cannot be read; accepted: {', '.join(BALANCE_PROVIDERS)}"
        )
    return tuple(dict.fromkeys(names))


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def _interval(raw: str) -> float:
    text = raw.strip().lower()
    scale = _UNITS.get(text[-1:])
    number = text[:-1] if scale is not None else text
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        seconds = 0.0
    if not seconds >= 10:
        raise _RejectedError("is not an interval of at least 10 seconds; e.g. 5m, 30s, 1h or 300")
    return seconds


def _code_flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _RejectedError("must be True or False")


def _code_content(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _content(value)
    raise _RejectedError("must be True, False or a GenAI content mode such as 'SPAN_ONLY'")


def _code_positive_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise _RejectedError("must be a positive whole number, e.g. 1000")


def _code_optional_text(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip()):
        return value
    raise _RejectedError("must be a non-empty string or None")


def _code_resolver(value: Any) -> Any:
    if callable(value):
        return value
    return _code_optional_text(value)


def _code_sdks(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return _sdks(value)
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        return _sdks(",".join(sorted(value) if isinstance(value, (set, frozenset)) else value))
    raise _RejectedError(f"must be a list of SDK names from {list(SDKS)}")


_CODE: dict[str, Callable[[Any], Any]] = {
    "capture_content": _code_content,
    "content_max_chars": _code_positive_int,
    "openai_stream_usage": _code_flag,
    "pricing_file": _code_optional_text,
    "metrics_include_user": _code_flag,
    "tenant_resolver": _code_resolver,
    "enrich_spans": _code_flag,
    "metrics_max_values": _code_positive_int,
    "instrument": _code_sdks,
    "budgets": _code_optional_text,
    "budget_ledger": lambda value: _ledger(value) if isinstance(value, str) else _ledger(repr(value)),
    "budget_fail": lambda value: _fail_mode(value) if isinstance(value, str) else _fail_mode(repr(value)),
    "user_id_hash": lambda value: None if value is None else _user_id_hash(str(value)),
    "user_id_key": _code_optional_text,
    "key_salt": _code_optional_text,
    "billing": _code_billing,
    "prices_update": lambda value: None if value is None else _interval(str(value)),
    "prices_url": _code_optional_text,
    "provider_balances": lambda value: _balance_providers(value if isinstance(value, str) else ",".join(value)),
    "provider_balances_interval": lambda value: _interval(str(value)),
}


def _default_text(name: str) -> str:
    value = getattr(Settings(), name)
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def report(settings: Settings, name: str, error: AimonConfigError) -> None:
    """A setting that failed when used (a pricing file, a resolver): raise if given in code or strict,
    else log once and go on without it."""
    if settings.strict or name in settings.given_in_code:
        raise error
    warn_once(("setting", name, str(error)), f"aimon-otel: {error}; going on without it")
