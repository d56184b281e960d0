"""Settings read once from the environment (OpenTelemetry style), each also settable in code.

A bad value fails at ``instrument()`` with the variable, the value and the fix, rather than
silently falling back to a default the user did not choose.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
CONTENT_MAX_CHARS_ENV = "AIMON_CAPTURE_CONTENT_MAX_CHARS"
STREAM_USAGE_ENV = "AIMON_OPENAI_STREAM_USAGE"
PRICING_FILE_ENV = "AIMON_PRICING_FILE"
METRICS_INCLUDE_USER_ENV = "AIMON_METRICS_INCLUDE_USER"
TENANT_RESOLVER_ENV = "AIMON_TENANT_RESOLVER"
ENRICH_SPANS_ENV = "AIMON_ENRICH_SPANS"
METRICS_MAX_VALUES_ENV = "AIMON_METRICS_MAX_VALUES"

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


class AimonConfigError(ValueError):
    """A setting has a value aimon-otel cannot use; the message says which and how to fix it."""


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
    tenant_resolver: str | None = None
    """``module:function`` returning the current tenant (or a mapping) when none is set."""
    enrich_spans: bool = True
    """Wrap the tracer provider's span processors so other instrumentations' GenAI spans get priced."""
    metrics_max_values: int = 1000
    """Distinct values per metric attribute (model, tenant, feature, user) before new ones become ``_other``."""

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from the environment, then from keyword arguments given in code."""
        env = os.environ if environ is None else environ
        settings = cls(
            capture_content=_flag(env, CAPTURE_CONTENT_ENV, cls.capture_content),
            content_max_chars=_positive_int(env, CONTENT_MAX_CHARS_ENV, cls.content_max_chars),
            openai_stream_usage=_flag(env, STREAM_USAGE_ENV, cls.openai_stream_usage),
            pricing_file=env.get(PRICING_FILE_ENV) or None,
            metrics_include_user=_flag(env, METRICS_INCLUDE_USER_ENV, cls.metrics_include_user),
            tenant_resolver=env.get(TENANT_RESOLVER_ENV) or None,
            enrich_spans=_flag(env, ENRICH_SPANS_ENV, cls.enrich_spans),
            metrics_max_values=_positive_int(env, METRICS_MAX_VALUES_ENV, cls.metrics_max_values),
        )
        known = {name for name in cls.__dataclass_fields__}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise AimonConfigError(
                f"AimonInstrumentor.instrument() got unknown setting(s) {unknown}; known settings are {sorted(known)}"
            )
        return replace(settings, **overrides)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise AimonConfigError(f"environment variable {name}={raw!r} is not a boolean; set it to 'true' or 'false'")


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise AimonConfigError(
            f"environment variable {name}={raw!r} must be a positive whole number, e.g. {name}={default}"
        )
    return value
