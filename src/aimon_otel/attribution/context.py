"""Who a call is for: tenant, user, feature, agent and conversation, carried in OpenTelemetry context.

Three sources, strongest first: ``aimon_otel.attributes(...)`` around the code; W3C baggage
keys ``tenant.id``, ``user.id``, ``aimon.feature``, ``gen_ai.agent.name``,
``gen_ai.conversation.id`` set by an upstream service; a resolver
function the app already has (``AIMON_TENANT_RESOLVER=module:function``), called only when a
value is still missing. Context is a contextvar, so values follow asyncio tasks and threads
that copy context. Values are capped at :data:`MAX_VALUE_CHARS` characters and control
characters are removed (one warning per attribute), on spans and metrics alike.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import baggage
from opentelemetry import context as otel_context

from aimon_otel import semconv
from aimon_otel.errors import AimonConfigError
from aimon_otel.faults import report_fault, warn_once

MAX_VALUE_CHARS = 128
"""Longest tenant, user, feature or extra value kept; longer ones are cut (with one warning per attribute)."""

_KEY = otel_context.create_key("aimon.attributes")
_ATTRIBUTION_KEYS = (
    semconv.TENANT_ID,
    semconv.USER_ID,
    semconv.FEATURE,
    semconv.AGENT_NAME,
    semconv.CONVERSATION_ID,
)
_RESOLVED_WHEN_MISSING = (semconv.TENANT_ID, semconv.USER_ID, semconv.FEATURE)
"""The resolver is asked when one of these is missing (agent and conversation are taken if it gives them)."""
_SHORT_NAMES = {
    "tenant_id": semconv.TENANT_ID,
    "user_id": semconv.USER_ID,
    "feature": semconv.FEATURE,
    "agent": semconv.AGENT_NAME,
    "conversation_id": semconv.CONVERSATION_ID,
}

Resolver = Callable[[], "str | Mapping[str, Any] | None"]
F = TypeVar("F", bound=Callable[..., Any])


class attributes:  # noqa: N801 - used like a function: `with aimon_otel.attributes(...)`
    """Attribute the LLM calls inside to a tenant, user, feature, agent and conversation (and ``extra``
    span attributes). ``agent`` becomes ``gen_ai.agent.name`` (spans and metrics), ``conversation_id``
    ``gen_ai.conversation.id`` (spans only: one value per conversation would flood the metrics).

    A context manager (sync and async) and a decorator. Nested uses merge, inner wins.
    Unknown keywords are a ``TypeError`` (a typo such as ``tenant=`` must not be lost silently);
    other attributes go in ``extra={"team": "growth"}``.
    """

    def __init__(
        self,
        tenant_id: str | None = None,
        user_id: str | None = None,
        feature: str | None = None,
        *,
        agent: str | None = None,
        conversation_id: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        values: dict[str, Any] = {
            semconv.TENANT_ID: tenant_id,
            semconv.USER_ID: user_id,
            semconv.FEATURE: feature,
            semconv.AGENT_NAME: agent,
            semconv.CONVERSATION_ID: conversation_id,
        }
        if extra is not None:
            if not isinstance(extra, Mapping):
                raise TypeError(f"attributes(extra=...) must be a mapping of names to strings, got {extra!r}")
            values.update(extra)
        self.values = {key: clean(key, str(value)) for key, value in values.items() if value is not None}
        self._tokens: list[object] = []

    def __enter__(self) -> attributes:
        merged = {**(otel_context.get_value(_KEY) or {}), **self.values}  # type: ignore[dict-item]
        self._tokens.append(otel_context.attach(otel_context.set_value(_KEY, merged)))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        otel_context.detach(self._tokens.pop())  # type: ignore[arg-type]

    async def __aenter__(self) -> attributes:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        values = self.values
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with _from_values(values):
                    return await func(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with _from_values(values):
                return func(*args, **kwargs)

        return run  # type: ignore[return-value]


def _from_values(values: dict[str, str]) -> attributes:
    made = attributes()
    made.values = values
    return made


def current_attributes(context: otel_context.Context | None = None, resolver: Resolver | None = None) -> dict[str, str]:
    """tenant.id, user.id, aimon.feature, gen_ai.agent.name, gen_ai.conversation.id (and extras) for a call
    starting in ``context``.

    ``attributes(...)`` wins, then baggage; ``resolver`` is asked only for what is still missing.
    """
    explicit: Mapping[str, str] | None = otel_context.get_value(_KEY, context)  # type: ignore[assignment]
    found = dict(explicit) if explicit else {}
    if len(found) >= len(_ATTRIBUTION_KEYS) and all(key in found for key in _ATTRIBUTION_KEYS):
        return found
    carried = baggage.get_all(context)
    if carried:
        for key in _ATTRIBUTION_KEYS:
            if key not in found:
                value = carried.get(key)
                if value is not None:
                    found[key] = clean(key, str(value))
    if resolver is not None and any(key not in found for key in _RESOLVED_WHEN_MISSING):
        for key, value in _resolve(resolver).items():
            found.setdefault(key, value)
    return found


def _resolve(resolver: Resolver) -> dict[str, str]:
    try:
        value = resolver()
    except Exception as fault:
        report_fault("tenant resolver", fault)
        return {}
    if value is None:
        return {}
    if isinstance(value, str):
        return {semconv.TENANT_ID: clean(semconv.TENANT_ID, value)} if value else {}
    if isinstance(value, Mapping):
        resolved: dict[str, str] = {}
        for key, item in value.items():
            name = _SHORT_NAMES.get(key, key)
            if name not in _ATTRIBUTION_KEYS:
                warn_once(
                    ("resolver key", str(key)), f"aimon-otel: tenant resolver returned an unknown key {key!r}; ignored"
                )
            elif isinstance(item, str) and item:
                resolved[name] = clean(name, item)
            elif item is not None:
                warn_once(
                    ("resolver value", name),
                    f"aimon-otel: tenant resolver returned {name}={item!r}, not a string; ignored",
                )
        return resolved
    warn_once(
        ("resolver result", type(value).__name__),
        f"aimon-otel: tenant resolver returned a {type(value).__name__}; it must return a tenant id (str), "
        "a mapping with tenant_id / user_id / feature / agent / conversation_id, or None; ignored",
    )
    return {}


def clean(key: str, value: str) -> str:
    """``value`` cut to MAX_VALUE_CHARS and without control characters; warns once per attribute."""
    if len(value) <= MAX_VALUE_CHARS and value.isprintable():
        return value
    cleaned = "".join(ch for ch in value if ch.isprintable())[:MAX_VALUE_CHARS]
    warn_once(
        ("value", key),
        f"aimon-otel: a {key} value was longer than {MAX_VALUE_CHARS} characters or held control characters; "
        f"it was cut or cleaned to {cleaned[:40]!r}... (logged once per attribute)",
    )
    return cleaned


def load_resolver(spec: str | Resolver | None, source: str = "AIMON_TENANT_RESOLVER") -> Resolver | None:
    """The function ``module:function`` names (or the callable given) that finds the tenant of calls with none."""
    if spec is None or callable(spec):
        return spec
    module_name, _, attribute = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise AimonConfigError(
            f"{source}={spec!r} cannot be loaded ({exc}); give it as module:function, e.g. myapp.tenancy:current_tenant"
        ) from None
    if not callable(found):
        raise AimonConfigError(f"{source}={spec!r} is not a function; give it as module:function")
    return found  # type: ignore[no-any-return]
