"""The ``anthropic`` SDK (0.40 through 2.x): which methods we wrap and how to read them.

Anthropic reports ``input_tokens`` *without* cached tokens; the conventions count them in,
so ``gen_ai.usage.input_tokens`` = input + cache read + cache write. In streams,
``message_start`` carries input and cache usage and ``message_delta`` carries *cumulative*
output tokens: the last one is the total, they are never added up.

anthropic 2.x traces each call itself (``anthropic/_tracing.py``); then we start no span of our
own (see :mod:`aimon_otel.instrumentation.native_spans`).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable
from typing import Any, TypedDict

from opentelemetry.trace import NoOpTracer, ProxyTracer
from opentelemetry.util.types import AttributeValue

from aimon_otel import semconv
from aimon_otel.config import Settings
from aimon_otel.faults import report_fault
from aimon_otel.instrumentation.calls import Wrapper, inside_call, run_async, run_sync
from aimon_otel.instrumentation.content import cut, field, fields, text_part, to_json
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.pipeline import Pipeline
from aimon_otel.instrumentation.providers.base import Endpoint, Plan, Target
from aimon_otel.instrumentation.providers.detect import base_url_of, detect_server
from aimon_otel.instrumentation.providers.request import request_numbers, stop_sequences
from aimon_otel.instrumentation.usage import CountReader, Usage

"""Not named by the conventions: token counting is free, so its spans carry no cost."""

_REQUEST_NUMBERS = (
    ("max_tokens", semconv.REQUEST_MAX_TOKENS),
    ("max_tokens_to_sample", semconv.REQUEST_MAX_TOKENS),
    ("temperature", semconv.REQUEST_TEMPERATURE),
    ("top_p", semconv.REQUEST_TOP_P),
    ("top_k", semconv.REQUEST_TOP_K),
)


def provider_of(client: Any) -> tuple[str, str | None, int | None]:
    """Bedrock and Vertex clients are those clouds' providers, priced with their prices."""
    server = detect_server(base_url_of(client), "anthropic")
    name = type(client).__name__
    if "Bedrock" in name:
        return "aws.bedrock", server.address, server.port
    if "Vertex" in name:
        return "gcp.vertex_ai", server.address, server.port
    return server.provider, server.address, server.port


def sdk_traces_itself(client: Any) -> bool:
    """anthropic 2.x with its tracing on and a real tracer provider behind it."""
    try:
        tracer = client._tracer
    except Exception:
        return False
    if tracer is None:
        return False
    if isinstance(tracer, ProxyTracer):
        tracer = tracer._tracer
    return not isinstance(tracer, NoOpTracer)


class AnthropicEndpoint(Endpoint):
    """What every anthropic SDK API shares: the client, its cloud, the request's options."""

    operation = semconv.OP_CHAT
    streams = True
    """The API takes ``stream=True`` (token counting does not)."""
    always_streams = False
    billable = True

    def plan(self, instance: Any, kwargs: dict[str, Any]) -> Plan:
        client = instance._client
        provider, address, port = provider_of(client)
        model = kwargs.get("model")
        stream = self.always_streams or kwargs.get("stream") is True
        attributes = request_numbers(kwargs, _REQUEST_NUMBERS)
        if self.streams:
            attributes[semconv.REQUEST_STREAM] = stream
        stops = stop_sequences(kwargs.get("stop_sequences"))
        if stops:
            attributes[semconv.REQUEST_STOP_SEQUENCES] = stops
        if self.settings.capture_content:
            attributes.update(_input_content(kwargs, self.settings.content_max_chars))
        invocation = Invocation(
            operation=self.operation,
            provider=provider,
            request_model=model if isinstance(model, str) else None,
            server_address=address,
            server_port=port,
            stream=stream,
            request_attributes=attributes,
            billable=self.billable,
            # The SDK's own span can only be priced through our span processor; with AIMON_ENRICH_SPANS=false
            # there is none, so our own span carries the price (the SDK's becomes its child).
            sdk_traces_itself=self.settings.enrich_spans and sdk_traces_itself(client),
            secrets=tuple(s for s in (getattr(client, "api_key", None), getattr(client, "auth_token", None)) if s),
        )
        return Plan(invocation, kwargs)  # nothing is added to Anthropic requests


class Messages(AnthropicEndpoint):
    """``messages.create`` / ``parse`` (plain or ``stream=True``), first-party, Bedrock and Vertex."""

    def record_response(self, invocation: Invocation, response: Any) -> None:
        extra: dict[str, AttributeValue] = {}
        if self.settings.capture_content:
            extra[semconv.OUTPUT_MESSAGES] = to_json(
                [_output_message(field(response, "content"), field(response, "stop_reason"), self.settings)]
            )
        stop = field(response, "stop_reason")
        invocation.answered(
            model=field(response, "model"),
            response_id=field(response, "id"),
            finish_reasons=[stop] if isinstance(stop, str) else None,
            usage=messages_usage(field(response, "usage")),
            attributes=extra,
        )

    def stream_reader(self, invocation: Invocation, plan: Plan) -> AnthropicStreamReader:
        return AnthropicStreamReader(self.settings)


class MessageStreams(Messages):
    """``messages.stream(...)``: a manager that sends the request on ``__enter__``.

    The manager keeps that request in a private attribute; we wrap it so the call is traced
    when it is really made, and the raw event stream the helper reads is our proxy.
    """

    always_streams = True

    def make_wrapper(self, pipeline: Pipeline) -> Wrapper:
        endpoint = self

        def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            manager = wrapped(*args, **kwargs)
            if inside_call() or not pipeline.active:
                return manager
            try:
                name = next(n for n in vars(manager) if n.endswith("__api_request"))
                request = getattr(manager, name)
                sent = {**kwargs, "stream": True}
                if inspect.isawaitable(request):
                    setattr(
                        manager,
                        name,
                        _closing_unsent(run_async(pipeline, endpoint, instance, sent, lambda _: request), request),
                    )
                else:
                    setattr(manager, name, lambda: run_sync(pipeline, endpoint, instance, sent, lambda _: request()))
            except Exception as fault:
                report_fault("anthropic stream manager", fault)
            return manager

        return wrapper


async def _closing_unsent(call: Any, request: Any) -> Any:
    """Await the traced call; if it never awaited the SDK's request (a budget refused it), close that
    coroutine so Python does not warn that it was never awaited."""
    try:
        return await call
    finally:
        if inspect.iscoroutine(request) and inspect.getcoroutinestate(request) == inspect.CORO_CREATED:
            request.close()


class CountTokens(AnthropicEndpoint):
    """``messages.count_tokens``: a span and a duration, no cost (counting is free)."""

    operation = semconv.OP_COUNT_TOKENS
    streams = False
    billable = False


class LegacyCompletions(Messages):
    """Legacy ``completions.create``: a ``completion`` object or event, no usage."""

    operation = semconv.OP_TEXT_COMPLETION


# Bedrock's and Vertex's ``beta.messages`` classes copy the first-party methods when they are
# imported (``create = FirstPartyMessagesAPI.create``), so they are wrapped where they live.
_MESSAGES_MODULES = (
    "anthropic.resources.messages",
    "anthropic.resources.beta.messages",
    "anthropic.lib.bedrock._beta_messages",
    "anthropic.lib.vertex._beta_messages",
)
_MESSAGES_METHODS: tuple[tuple[str, type[AnthropicEndpoint]], ...] = (
    ("create", Messages),
    ("parse", Messages),
    ("stream", MessageStreams),
    ("count_tokens", CountTokens),
)
TARGETS: tuple[Target, ...] = (
    *(
        Target(module, f"{prefix}Messages.{method}", endpoint, prefix == "Async")
        for module in _MESSAGES_MODULES
        for prefix in ("", "Async")
        for method, endpoint in _MESSAGES_METHODS
    ),
    Target("anthropic.resources.completions", "Completions.create", LegacyCompletions, False),
    Target("anthropic.resources.completions", "AsyncCompletions.create", LegacyCompletions, True),
)


def messages_usage(usage: Any, output_tokens: Any = None) -> Usage | None:
    """Anthropic usage in the conventions' terms, summed over ``usage.iterations`` when present.

    With context management, ``iterations`` lists every model pass; the top-level counts leave
    the compaction pass out, so the passes are what was billed. Each pass keeps its own model
    (an advisor or fallback model is priced at its own price).
    """
    if usage is None:
        return None
    read = CountReader()
    top = _pass_counts(usage, read, output_tokens)
    tools, iterations = fields(usage, _TOOLS_AND_PASSES)
    web_searches = read.count(field(tools, "web_search_requests"), "web_search_requests")
    if not isinstance(iterations, (list, tuple)) or not iterations:
        return Usage(**top, web_searches=web_searches or None, problems=read.result())
    passes = [(_model_name(field(entry, "model")), Usage(**_pass_counts(entry, read))) for entry in iterations]
    return Usage(
        input_tokens=_sum(p.input_tokens for _, p in passes),
        output_tokens=_sum(p.output_tokens for _, p in passes),
        cache_read_input_tokens=_sum(p.cache_read_input_tokens for _, p in passes),
        cache_creation_input_tokens=_sum(p.cache_creation_input_tokens for _, p in passes),
        cache_creation_5m_input_tokens=_sum(p.cache_creation_5m_input_tokens for _, p in passes),
        cache_creation_1h_input_tokens=_sum(p.cache_creation_1h_input_tokens for _, p in passes),
        reasoning_output_tokens=top["reasoning_output_tokens"],
        web_searches=web_searches or None,
        problems=read.result(),
        passes=tuple(passes),
    )


class _PassCounts(TypedDict):
    input_tokens: int | None
    output_tokens: int | None
    cache_read_input_tokens: int | None
    cache_creation_input_tokens: int | None
    cache_creation_5m_input_tokens: int | None
    cache_creation_1h_input_tokens: int | None
    reasoning_output_tokens: int | None


def _pass_counts(usage: Any, read: CountReader, output_tokens: Any = None) -> _PassCounts:
    """One pass's counts as ``Usage`` fields; ``input_tokens`` includes the cache, as the conventions count it."""
    uncached, cache_read, cache_write, creation, output, details = fields(usage, _PASS_COUNTS)
    uncached = read.count(uncached, "input_tokens", required=True)
    cache_read = read.count(cache_read, "cache_read_input_tokens")
    cache_write = read.count(cache_write, "cache_creation_input_tokens")
    output = read.count(output_tokens if output_tokens is not None else output, "output_tokens", required=True)
    write_5m, write_1h = fields(creation, _CACHE_WRITES)
    return {
        "input_tokens": None if uncached is None else uncached + (cache_read or 0) + (cache_write or 0),
        "output_tokens": output,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write,
        "cache_creation_5m_input_tokens": read.count(write_5m, "cache_creation.ephemeral_5m_input_tokens"),
        "cache_creation_1h_input_tokens": read.count(write_1h, "cache_creation.ephemeral_1h_input_tokens"),
        "reasoning_output_tokens": read.count(
            field(details, "thinking_tokens"), "output_tokens_details.thinking_tokens"
        ),
    }


_PASS_COUNTS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation",
    "output_tokens",
    "output_tokens_details",
)
_CACHE_WRITES = ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")
_TOOLS_AND_PASSES = ("server_tool_use", "iterations")


def _sum(values: Iterable[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _model_name(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# What a ``message_delta`` usage may repeat or add to ``message_start``'s (newer APIs): the latest wins.
_DELTA_USAGE_KEYS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation",
    "server_tool_use",
    "iterations",
    "output_tokens_details",
)


class AnthropicStreamReader:
    """Messages stream events (and legacy completion events)."""

    __slots__ = ("message", "output_tokens", "settings", "start_usage", "stop_reason", "texts", "tool_calls", "usage")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.message: Any = None
        self.start_usage: Any = None
        self.usage: dict[str, Any] = {}
        self.output_tokens: Any = None
        self.stop_reason: Any = None
        self.texts: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}

    def hides(self, event: Any) -> bool:
        return False

    def on_item(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            self.message = event.message
            self.start_usage = getattr(event.message, "usage", None)
        elif kind == "message_delta":
            delta_usage = getattr(event, "usage", None)
            if delta_usage is not None:
                # Cumulative: the latest value is the total. Newer APIs also repeat input/cache counts here.
                self.output_tokens = getattr(delta_usage, "output_tokens", None)
                for key in _DELTA_USAGE_KEYS:
                    value = getattr(delta_usage, key, None)
                    if value is not None:
                        self.usage[key] = value
            reason = getattr(getattr(event, "delta", None), "stop_reason", None)
            if reason is not None:
                self.stop_reason = reason
        elif kind == "completion":  # legacy text completions
            self.message = event
            self.stop_reason = getattr(event, "stop_reason", None) or self.stop_reason
        elif self.settings.capture_content and kind == "content_block_delta":
            delta = event.delta
            if getattr(delta, "type", None) == "text_delta":
                self.texts.append(delta.text)
            elif getattr(delta, "type", None) == "input_json_delta":
                self.tool_calls.setdefault(event.index, {"arguments": ""})["arguments"] += delta.partial_json
        elif self.settings.capture_content and kind == "content_block_start":
            block = event.content_block
            if getattr(block, "type", None) == "tool_use":
                self.tool_calls.setdefault(event.index, {"arguments": ""}).update(id=block.id, name=block.name)

    def finish(self, invocation: Invocation) -> None:
        usage = None
        if self.start_usage is not None:
            merged = {**_as_dict(self.start_usage), **self.usage}
            usage = messages_usage(merged, self.output_tokens if self.output_tokens is not None else None)
        extra: dict[str, AttributeValue] = {}
        if self.settings.capture_content:
            parts: list[dict[str, Any]] = (
                [text_part("".join(self.texts), self.settings.content_max_chars)] if self.texts else []
            )
            parts += [
                {
                    "type": "tool_call",
                    "id": t.get("id"),
                    "name": t.get("name"),
                    "arguments": cut(t["arguments"], self.settings.content_max_chars),
                }
                for t in self.tool_calls.values()
            ]
            extra[semconv.OUTPUT_MESSAGES] = to_json(
                [{"role": "assistant", "parts": parts, "finish_reason": self.stop_reason}]
            )
        invocation.answered(
            model=field(self.message, "model"),
            response_id=field(self.message, "id"),
            finish_reasons=[self.stop_reason] if isinstance(self.stop_reason, str) else None,
            usage=usage,
            attributes=extra,
        )


def _as_dict(usage: Any) -> dict[str, Any]:
    if isinstance(usage, dict):
        return usage
    dump = getattr(usage, "model_dump", None)
    return dict(dump()) if callable(dump) else {}


# --- content shapes ---------------------------------------------------------------------
def _input_content(kwargs: dict[str, Any], limit: int) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    system = kwargs.get("system")
    if isinstance(system, str):
        out[semconv.SYSTEM_INSTRUCTIONS] = to_json([text_part(system, limit)])
    elif isinstance(system, list):
        out[semconv.SYSTEM_INSTRUCTIONS] = to_json(_parts(system, limit))
    messages = kwargs.get("messages")
    if isinstance(messages, (list, tuple)):
        out[semconv.INPUT_MESSAGES] = to_json(
            [{"role": field(m, "role") or "user", "parts": _parts(field(m, "content"), limit)} for m in messages]
        )
    prompt = kwargs.get("prompt")
    if isinstance(prompt, str):
        out[semconv.INPUT_MESSAGES] = to_json([{"role": "user", "parts": [text_part(prompt, limit)]}])
    return out


def _parts(content: Any, limit: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [text_part(content, limit)]
    parts: list[dict[str, Any]] = []
    for block in content or []:
        kind = field(block, "type")
        if kind == "text":
            parts.append(text_part(str(field(block, "text") or ""), limit))
        elif kind == "tool_use":
            parts.append(
                {
                    "type": "tool_call",
                    "id": field(block, "id"),
                    "name": field(block, "name"),
                    "arguments": cut(json.dumps(field(block, "input"), default=str), limit),
                }
            )
        elif kind == "tool_result":
            parts.append(
                {
                    "type": "tool_call_response",
                    "id": field(block, "tool_use_id"),
                    "response": cut(json.dumps(field(block, "content"), default=str), limit),
                }
            )
        else:
            parts.append({"type": str(kind or "unknown")})
    return parts


def _output_message(content: Any, stop_reason: Any, settings: Settings) -> dict[str, Any]:
    return {
        "role": "assistant",
        "parts": _parts(content, settings.content_max_chars),
        "finish_reason": stop_reason if isinstance(stop_reason, str) else None,
    }
