"""Who a call is for: tenant, user and feature, carried in OpenTelemetry context.

Three sources, strongest first: ``aimon_otel.attributes(...)`` around the code; a resolver
function the app already has (``AIMON_TENANT_RESOLVER=module:function``); W3C baggage keys
``tenant.id``, ``user.id``, ``aimon.feature`` set by an upstream service. Context is a
contextvar, so values follow asyncio tasks and threads that copy context.
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
from aimon_otel.config import AimonConfigError
from aimon_otel.faults import report_fault

_KEY = otel_context.create_key("aimon.attributes")
_BAGGAGE_KEYS = (semconv.TENANT_ID, semconv.USER_ID, semconv.FEATURE)
_SHORT_NAMES = {"tenant_id": semconv.TENANT_ID, "user_id": semconv.USER_ID, "feature": semconv.FEATURE}

Resolver = Callable[[], "str | Mapping[str, Any] | None"]
_resolver: Resolver | None = None
F = TypeVar("F", bound=Callable[..., Any])


class attributes:  # noqa: N801 - used like a function: `with aimon_otel.attributes(...)`
    """Attribute the LLM calls inside to a tenant, user and feature (and any extra keys).

    A context manager (sync and async) and a decorator. Nested uses merge, inner wins.
    """

    def __init__(
        self, tenant_id: str | None = None, user_id: str | None = None, feature: str | None = None, **extra: str
    ) -> None:
        values = {semconv.TENANT_ID: tenant_id, semconv.USER_ID: user_id, semconv.FEATURE: feature, **extra}
        self.values = {key: str(value) for key, value in values.items() if value is not None}
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


def current_attributes(context: otel_context.Context | None = None) -> dict[str, str]:
    """tenant.id / user.id / aimon.feature (and extras) for a call starting in ``context``."""
    found: dict[str, str] = {}
    carried = baggage.get_all(context)
    if carried:
        for key in _BAGGAGE_KEYS:
            value = carried.get(key)
            if value is not None:
                found[key] = str(value)
    if _resolver is not None:
        found.update(_resolve())
    explicit = otel_context.get_value(_KEY, context)
    if explicit:
        found.update(explicit)  # type: ignore[call-overload]
    return found


def _resolve() -> dict[str, str]:
    assert _resolver is not None
    try:
        value = _resolver()
    except Exception as fault:
        report_fault("tenant resolver", fault)
        return {}
    if value is None:
        return {}
    if isinstance(value, str):
        return {semconv.TENANT_ID: value}
    return {_SHORT_NAMES.get(k, k): str(v) for k, v in value.items() if v is not None}


def set_resolver(spec: str | Resolver | None, source: str = "AIMON_TENANT_RESOLVER") -> None:
    """Use ``module:function`` (or a callable) to find the tenant of calls with none set."""
    global _resolver
    if spec is None or callable(spec):
        _resolver = spec
        return
    module_name, _, attribute = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise AimonConfigError(
            f"{source}={spec!r} cannot be loaded ({exc}); give it as module:function, e.g. myapp.tenancy:current_tenant"
        ) from None
    if not callable(found):
        raise AimonConfigError(f"{source}={spec!r} is not a function")
    _resolver = found
