"""Thin wrappers around SDK methods: start a call, call through, hand the result on.

A provider adapter describes *what* to read (an :class:`Endpoint`); this module does the
*how* once for every provider: spans, the "one span per call" guard for SDK methods that
call each other, fault isolation, and the raw-response and stream cases.
"""

from __future__ import annotations

import contextvars
import inspect
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from aimon_otel import semconv
from aimon_otel.faults import report_fault
from aimon_otel.streams import AsyncStreamProxy, StreamAccumulator, SyncStreamProxy
from aimon_otel.telemetry import LLMCall, Request, Telemetry

_inside_call: contextvars.ContextVar[bool] = contextvars.ContextVar("aimon_inside_call", default=False)


class Plan(Protocol):
    """How a request will be sent: what we read from it and the kwargs to send."""

    @property
    def request(self) -> Request: ...

    @property
    def kwargs(self) -> dict[str, Any]: ...

    def without_additions(self) -> Plan | None:
        """The plan to retry with once if the endpoint rejects what we added; None if nothing was."""


PlanT = TypeVar("PlanT", bound=Plan)


class Endpoint(Protocol[PlanT]):
    """One SDK method, as a provider adapter describes it."""

    def plan(self, instance: Any, kwargs: dict[str, Any]) -> PlanT:
        """Read the request; may add options (which the caller never sees the effect of)."""

    def should_fall_back(self, plan: PlanT, exc: BaseException) -> bool:
        """True when ``exc`` means the endpoint rejected what ``plan`` added."""

    def is_stream(self, result: Any) -> bool: ...

    def is_raw_response(self, result: Any) -> bool: ...

    def record_response(self, call: LLMCall, response: Any) -> None:
        """Report a parsed (non-stream) response to the call."""

    def stream_accumulator(self, call: LLMCall, plan: PlanT) -> StreamAccumulator: ...

    def fell_back(self, plan: PlanT) -> None:
        """The call succeeded without what ``plan`` added: do not add it there again."""


def inside_call() -> bool:
    """True while one of our wrapped calls is under way in this context, or instrumentation is suppressed."""
    return _inside_call.get() or not is_instrumentation_enabled()


Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


def _start(
    telemetry: Telemetry, endpoint: Endpoint[Any], instance: Any, kwargs: dict[str, Any]
) -> tuple[Plan, LLMCall] | None:
    try:
        plan = endpoint.plan(instance, kwargs)
        return plan, LLMCall(telemetry, plan.request)
    except Exception as fault:
        report_fault("request", fault)
        return None


def sync_wrapper(telemetry: Telemetry, endpoint: Endpoint[Any]) -> Wrapper:
    """A wrapt wrapper for a sync SDK method."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if _inside_call.get() or not is_instrumentation_enabled():
            return wrapped(*args, **kwargs)
        return run_sync(telemetry, endpoint, instance, kwargs, lambda sent: wrapped(*args, **sent))

    return wrapper


def async_wrapper(telemetry: Telemetry, endpoint: Endpoint[Any]) -> Wrapper:
    """A wrapt wrapper for an async SDK method."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if _inside_call.get() or not is_instrumentation_enabled():
            return wrapped(*args, **kwargs)
        return run_async(telemetry, endpoint, instance, kwargs, lambda sent: wrapped(*args, **sent))

    return wrapper


def run_sync(
    telemetry: Telemetry,
    endpoint: Endpoint[Any],
    instance: Any,
    kwargs: dict[str, Any],
    send: Callable[[dict[str, Any]], Any],
) -> Any:
    """One traced call: ``send(kwargs)`` makes the request (again, without our additions, if rejected).

    Everything of ours on the app's path is inside a fault guard: the app sees only what ``send``
    returns or raises.
    """
    started = _start(telemetry, endpoint, instance, kwargs)
    if started is None:
        return send(kwargs)
    plan, call = started
    guard = _inside_call.set(True)
    deactivate = _activate(call)
    try:
        try:
            result = send(plan.kwargs)
        except Exception as exc:
            fallback = _fallback_for(endpoint, plan, exc)
            if fallback is None:
                raise
            result = send(fallback.kwargs)
            _fell_back(endpoint, plan)
            plan = fallback
    except BaseException as exc:
        _fail(call, exc)
        raise
    finally:
        _deactivate(deactivate)
        _inside_call.reset(guard)
    return _take_result(endpoint, call, plan, result)


async def run_async(
    telemetry: Telemetry,
    endpoint: Endpoint[Any],
    instance: Any,
    kwargs: dict[str, Any],
    send: Callable[[dict[str, Any]], Awaitable[Any]],
) -> Any:
    """``run_sync`` for coroutines."""
    started = _start(telemetry, endpoint, instance, kwargs)
    if started is None:
        return await send(kwargs)
    plan, call = started
    guard = _inside_call.set(True)
    deactivate = _activate(call)
    try:
        try:
            result = await send(plan.kwargs)
        except Exception as exc:
            fallback = _fallback_for(endpoint, plan, exc)
            if fallback is None:
                raise
            result = await send(fallback.kwargs)
            _fell_back(endpoint, plan)
            plan = fallback
    except BaseException as exc:
        _fail(call, exc)
        raise
    finally:
        _deactivate(deactivate)
        _inside_call.reset(guard)
    return _take_result(endpoint, call, plan, result)


def _activate(call: LLMCall) -> Callable[[], None] | None:
    try:
        return call.activate()
    except Exception as fault:
        report_fault("activate", fault)
        return None


def _deactivate(deactivate: Callable[[], None] | None) -> None:
    if deactivate is None:
        return
    try:
        deactivate()
    except Exception as fault:
        report_fault("deactivate", fault)


def _fallback_for(endpoint: Endpoint[Any], plan: Plan, exc: BaseException) -> Plan | None:
    """The plan to retry with when the endpoint rejected what we added; None to let ``exc`` through."""
    try:
        fallback = plan.without_additions()
        if fallback is not None and endpoint.should_fall_back(plan, exc):
            return fallback
    except Exception as fault:
        report_fault("fallback", fault)
    return None


def _fell_back(endpoint: Endpoint[Any], plan: Plan) -> None:
    try:
        endpoint.fell_back(plan)
    except Exception as fault:
        report_fault("fallback", fault)


def _fail(call: LLMCall, exc: BaseException) -> None:
    try:
        call.fail(exc)
        call.end()
    except Exception as fault:
        report_fault("error", fault)


def _end(call: LLMCall, extra: dict[str, Any] | None = None) -> None:
    try:
        call.end(extra)
    except Exception as fault:
        report_fault("end", fault)


def _take_result(endpoint: Endpoint[Any], call: LLMCall, plan: Plan, result: Any) -> Any:
    """Hand back the SDK's own result, streams proxied; end the call when it is complete."""
    try:
        if endpoint.is_stream(result):
            return _proxy_stream(endpoint, call, plan, result)
        if endpoint.is_raw_response(result):
            _follow_raw_response(endpoint, call, plan, result)
            return result
        endpoint.record_response(call, result)
        call.end()
    except Exception as fault:
        report_fault("response", fault)
        _end(call)
    return result


def _proxy_stream(endpoint: Endpoint[Any], call: LLMCall, plan: Plan, stream: Any) -> Any:
    accumulator = endpoint.stream_accumulator(call, plan)
    if hasattr(stream, "__anext__"):
        return AsyncStreamProxy(stream, call, accumulator)
    return SyncStreamProxy(stream, call, accumulator)


def _follow_raw_response(endpoint: Endpoint[Any], call: LLMCall, plan: Plan, raw: Any) -> None:
    """``with_raw_response`` / ``with_streaming_response``: end the call when the body is parsed.

    A raw response whose body is already in memory is parsed now (the SDK caches the
    parse, so the caller's own ``parse()`` returns the same object). Otherwise ``parse``
    and ``close`` are shadowed on this one instance, and a collected response that was
    never parsed ends its call as abandoned.
    """
    body_in_memory = not inspect.iscoroutinefunction(raw.parse) and not getattr(raw, "_stream", True)
    if body_in_memory and getattr(raw.http_response, "is_stream_consumed", True):
        endpoint.record_response(call, raw.parse())
        call.end()
        return

    original_parse = raw.parse
    original_close = getattr(raw, "close", None)
    parsed_results: dict[Any, Any] = {}

    def take(key: Any, parsed: Any) -> Any:
        if key in parsed_results:
            return parsed_results[key]
        try:
            if endpoint.is_stream(parsed):
                parsed = _proxy_stream(endpoint, call, plan, parsed)
            else:
                endpoint.record_response(call, parsed)
                call.end()
        except Exception as fault:
            report_fault("raw response", fault)
            _end(call)
        parsed_results[key] = parsed
        return parsed

    if inspect.iscoroutinefunction(original_parse):

        async def parse_async(*args: Any, **kwargs: Any) -> Any:
            return take(kwargs.get("to"), await original_parse(*args, **kwargs))

        raw.parse = parse_async
    else:

        def parse(*args: Any, **kwargs: Any) -> Any:
            return take(kwargs.get("to"), original_parse(*args, **kwargs))

        raw.parse = parse

    def end_if_unparsed() -> None:
        if not parsed_results:
            _end(call, {semconv.STREAM_OUTCOME: semconv.STREAM_CLOSED} if plan.request.stream else None)

    if inspect.iscoroutinefunction(original_close):

        async def close_async() -> None:
            try:
                await original_close()
            finally:
                end_if_unparsed()

        raw.close = close_async
    elif original_close is not None:

        def close() -> None:
            try:
                original_close()
            finally:
                end_if_unparsed()

        raw.close = close
    weakref.finalize(raw, _end_abandoned, call)


def _end_abandoned(call: LLMCall) -> None:
    try:
        call.end({semconv.STREAM_OUTCOME: semconv.STREAM_ABANDONED})
    except Exception as fault:
        report_fault("raw response", fault)


class _NoModel:
    """Stands in for pydantic's BaseModel if it cannot be imported: nothing is an instance of it."""


def sdk_model_type() -> type:
    """The base class of the SDKs' response objects (pydantic's), to tell them from raw responses cheaply.

    Called when an endpoint is built, after the SDK (and so pydantic) is imported: importing
    ``aimon_otel`` itself never pays for pydantic.
    """
    try:
        from pydantic import BaseModel
    except ImportError:  # pragma: no cover - both SDKs depend on pydantic
        return _NoModel
    return BaseModel


def is_raw_response(result: Any, model_type: type) -> bool:
    """A ``with_raw_response`` / ``with_streaming_response`` result rather than a parsed model.

    The parsed model (the common case) is ruled out first: ``hasattr`` on it goes through
    pydantic's slow ``__getattr__``.
    """
    if isinstance(result, model_type):
        return False
    return hasattr(result, "http_response") and hasattr(result, "parse")
