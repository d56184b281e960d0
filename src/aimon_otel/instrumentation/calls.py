"""Thin wrappers around SDK methods: plan the call, start it, call through, hand the result on.

A provider endpoint says *what* to read (:mod:`aimon_otel.instrumentation.providers.base`); this module does the
*how* once for every provider: the "one span per call" guard for SDK methods that call each
other, suppression, fault isolation, the fallback when an endpoint rejects what we added, and
the raw-response and stream cases. Telemetry itself is the pipeline's (:mod:`aimon_otel.instrumentation.pipeline`).
"""

from __future__ import annotations

import contextvars
import inspect
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from aimon_otel import semconv
from aimon_otel.budgets.guard import BudgetExceeded
from aimon_otel.faults import report_fault
from aimon_otel.instrumentation.pipeline import Call, Pipeline
from aimon_otel.instrumentation.providers.base import Endpoint, Plan
from aimon_otel.instrumentation.streams import (
    AsyncIterableStreamProxy,
    AsyncStreamProxy,
    IterableStreamProxy,
    SyncStreamProxy,
)

_inside_call: contextvars.ContextVar[bool] = contextvars.ContextVar("aimon_inside_call", default=False)


def inside_call() -> bool:
    """True while one of our wrapped calls is under way in this context, or instrumentation is suppressed."""
    return _inside_call.get() or not is_instrumentation_enabled()


Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


def _start(pipeline: Pipeline, endpoint: Endpoint, instance: Any, kwargs: dict[str, Any]) -> tuple[Plan, Call] | None:
    try:
        plan = endpoint.plan(instance, kwargs)
        return plan, pipeline.start(plan.invocation)
    except Exception as fault:
        report_fault("request", fault)
        return None


def function_wrapper(pipeline: Pipeline, endpoint: Endpoint, is_async: bool) -> Wrapper:
    """A wrapt wrapper for a module function (LiteLLM's): the endpoint reads its positional arguments."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if inside_call() or not pipeline.active:
            return wrapped(*args, **kwargs)
        run = run_async if is_async else run_sync
        return run(pipeline, endpoint, args, kwargs, lambda sent: wrapped(*args, **sent))

    return wrapper


def sync_wrapper(pipeline: Pipeline, endpoint: Endpoint) -> Wrapper:
    """A wrapt wrapper for a sync SDK method."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if inside_call() or not pipeline.active:
            return wrapped(*args, **kwargs)
        return run_sync(pipeline, endpoint, instance, kwargs, lambda sent: wrapped(*args, **sent))

    return wrapper


def async_wrapper(pipeline: Pipeline, endpoint: Endpoint) -> Wrapper:
    """A wrapt wrapper for an async SDK method."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if inside_call() or not pipeline.active:
            return wrapped(*args, **kwargs)
        return run_async(pipeline, endpoint, instance, kwargs, lambda sent: wrapped(*args, **sent))

    return wrapper


def run_sync(
    pipeline: Pipeline,
    endpoint: Endpoint,
    instance: Any,
    kwargs: dict[str, Any],
    send: Callable[[dict[str, Any]], Any],
) -> Any:
    """One traced call: ``send(kwargs)`` makes the request (again, without our additions, if rejected).

    Everything of ours on the app's path is inside a fault guard: the app sees only what ``send``
    returns or raises.
    """
    started = _start(pipeline, endpoint, instance, kwargs)
    if started is None:
        return send(kwargs)
    plan, call = started
    refusal = pipeline.refusal(call) if pipeline.guard is not None else None  # no call without budgets
    if refusal is not None:
        _refuse(call, refusal)
        raise refusal
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
    pipeline: Pipeline,
    endpoint: Endpoint,
    instance: Any,
    kwargs: dict[str, Any],
    send: Callable[[dict[str, Any]], Awaitable[Any]],
) -> Any:
    """``run_sync`` for coroutines."""
    started = _start(pipeline, endpoint, instance, kwargs)
    if started is None:
        return await send(kwargs)
    plan, call = started
    refusal = pipeline.refusal(call) if pipeline.guard is not None else None  # no call without budgets
    if refusal is not None:
        _refuse(call, refusal)
        raise refusal
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
    if endpoint.reads_body_async:
        try:
            await endpoint.read_body_async(result)
        except Exception as fault:
            report_fault("response body", fault)
    return _take_result(endpoint, call, plan, result)


def _activate(call: Call) -> Callable[[], None] | None:
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


def _fallback_for(endpoint: Endpoint, plan: Plan, exc: BaseException) -> Plan | None:
    """The plan to retry with when the endpoint rejected what we added; None to let ``exc`` through."""
    try:
        fallback = plan.without_additions()
        if fallback is not None and endpoint.should_fall_back(plan, exc):
            return fallback
    except Exception as fault:
        report_fault("fallback", fault)
    return None


def _fell_back(endpoint: Endpoint, plan: Plan) -> None:
    try:
        endpoint.fell_back(plan)
    except Exception as fault:
        report_fault("fallback", fault)


def _fail(call: Call, exc: BaseException) -> None:
    try:
        call.invocation.raised(exc)
        call.end()
    except Exception as fault:
        report_fault("error", fault)


def _refuse(call: Call, refusal: BudgetExceeded) -> None:
    try:
        call.refuse(refusal)
    except Exception as fault:
        report_fault("refusal", fault)


def _end(call: Call, outcome: str | None = None) -> None:
    try:
        if outcome is not None:
            call.invocation.stream_outcome = outcome
        call.end()
    except Exception as fault:
        report_fault("end", fault)


def _take_result(endpoint: Endpoint, call: Call, plan: Plan, result: Any) -> Any:
    """Hand back the SDK's own result, streams proxied; end the call when it is complete."""
    try:
        if endpoint.is_stream(result):
            return _proxy_stream(endpoint, call, plan, result)
        if endpoint.is_raw_response(result):
            _follow_raw_response(endpoint, call, plan, result)
            return result
        endpoint.record_response(call.invocation, result)
        call.end()
    except Exception as fault:
        report_fault("response", fault)
        _end(call)
    return result


def _proxy_stream(endpoint: Endpoint, call: Call, plan: Plan, result: Any) -> Any:
    reader = endpoint.stream_reader(call.invocation, plan)
    stream = endpoint.stream_of(result)
    is_async = endpoint.stream_async
    if is_async is None:
        is_async = hasattr(stream, "__anext__")
    if is_async:
        async_kind = AsyncIterableStreamProxy if endpoint.iterable_stream else AsyncStreamProxy
        proxy: Any = async_kind(stream, call, reader)
    elif hasattr(stream, "__next__"):
        proxy = SyncStreamProxy(stream, call, reader)
    else:
        proxy = IterableStreamProxy(stream, call, reader)
    return endpoint.with_stream(result, proxy)


def _follow_raw_response(endpoint: Endpoint, call: Call, plan: Plan, raw: Any) -> None:
    """``with_raw_response`` / ``with_streaming_response``: end the call when the body is parsed.

    A raw response whose body is already in memory is parsed now (the SDK caches the
    parse, so the caller's own ``parse()`` returns the same object). Otherwise ``parse``
    and ``close`` are shadowed on this one instance, and a collected response that was
    never parsed ends its call as abandoned.
    """
    body_in_memory = not inspect.iscoroutinefunction(raw.parse) and not getattr(raw, "_stream", True)
    if body_in_memory and getattr(raw.http_response, "is_stream_consumed", True):
        endpoint.record_response(call.invocation, raw.parse())
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
                endpoint.record_response(call.invocation, parsed)
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
            _end(call, semconv.STREAM_CLOSED if plan.invocation.stream else None)

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


def _end_abandoned(call: Call) -> None:
    _end(call, semconv.STREAM_ABANDONED)
