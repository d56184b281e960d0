"""The ``openai`` SDK (1.40 through 3.x): which methods we wrap and how to read them.

Also used for every OpenAI-compatible provider the SDK is pointed at (Azure, OpenRouter,
Groq, ...); :mod:`aimon_otel.providers.detect` tells them apart by base URL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from opentelemetry.util.types import AttributeValue

from aimon_otel import semconv
from aimon_otel.calls import is_raw_response, sdk_model_type
from aimon_otel.config import Settings
from aimon_otel.content import cut, field, text_part, to_json
from aimon_otel.providers.detect import base_url_of, detect_server
from aimon_otel.providers.request import request_numbers, stop_sequences
from aimon_otel.telemetry import LLMCall, Request
from aimon_otel.usage import CountReader, Usage

CHAT = "chat"
RESPONSES = "responses"
EMBEDDINGS = "embeddings"
COMPLETIONS = "completions"

_OPERATION = {
    CHAT: semconv.OP_CHAT,
    RESPONSES: semconv.OP_CHAT,
    EMBEDDINGS: semconv.OP_EMBEDDINGS,
    COMPLETIONS: semconv.OP_TEXT_COMPLETION,
}


class Target(NamedTuple):
    """One SDK method to wrap: ``module``, ``Class.method``, the API it calls, async or not."""

    module: str
    method: str
    api: str
    is_async: bool


# What is wrapped, as data. Methods missing from the installed SDK are skipped.
# ``chat.completions.stream`` and ``responses.stream`` call ``create`` and so are covered.
TARGETS: tuple[Target, ...] = (
    Target("openai.resources.chat.completions", "Completions.create", CHAT, False),
    Target("openai.resources.chat.completions", "AsyncCompletions.create", CHAT, True),
    Target("openai.resources.chat.completions", "Completions.parse", CHAT, False),
    Target("openai.resources.chat.completions", "AsyncCompletions.parse", CHAT, True),
    Target("openai.resources.beta.chat.completions", "Completions.parse", CHAT, False),
    Target("openai.resources.beta.chat.completions", "AsyncCompletions.parse", CHAT, True),
    Target("openai.resources.responses", "Responses.create", RESPONSES, False),
    Target("openai.resources.responses", "AsyncResponses.create", RESPONSES, True),
    Target("openai.resources.responses", "Responses.parse", RESPONSES, False),
    Target("openai.resources.responses", "AsyncResponses.parse", RESPONSES, True),
    Target("openai.resources.embeddings", "Embeddings.create", EMBEDDINGS, False),
    Target("openai.resources.embeddings", "AsyncEmbeddings.create", EMBEDDINGS, True),
    Target("openai.resources.completions", "Completions.create", COMPLETIONS, False),
    Target("openai.resources.completions", "AsyncCompletions.create", COMPLETIONS, True),
)

_REQUEST_NUMBERS = (
    ("max_tokens", semconv.REQUEST_MAX_TOKENS),
    ("max_completion_tokens", semconv.REQUEST_MAX_TOKENS),
    ("max_output_tokens", semconv.REQUEST_MAX_TOKENS),
    ("temperature", semconv.REQUEST_TEMPERATURE),
    ("top_p", semconv.REQUEST_TOP_P),
    ("seed", semconv.REQUEST_SEED),
    ("n", semconv.REQUEST_CHOICE_COUNT),
    ("frequency_penalty", semconv.REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", semconv.REQUEST_PRESENCE_PENALTY),
)


@dataclass(frozen=True)
class OpenAIPlan:
    request: Request
    kwargs: dict[str, Any]
    base_url: str
    original_kwargs: dict[str, Any] | None
    """The caller's kwargs when we added ``stream_options``; None when we added nothing."""

    @property
    def hide_usage_chunk(self) -> bool:
        return self.original_kwargs is not None

    def without_additions(self) -> OpenAIPlan | None:
        if self.original_kwargs is None:
            return None
        return replace(self, kwargs=self.original_kwargs, original_kwargs=None)


class OpenAIEndpoint:
    """Reads one kind of OpenAI API call (chat, responses, embeddings, completions)."""

    def __init__(self, api: str, settings: Settings, stream_types: tuple[type, ...]) -> None:
        self.api = api
        self.operation = _OPERATION[api]
        self.settings = settings
        self.stream_types = stream_types
        self.model_type = sdk_model_type()
        self.asks_stream_usage = api in (CHAT, COMPLETIONS) and settings.openai_stream_usage
        # Base URLs that answered 400 to ``stream_options`` and then accepted the call without it.
        self.rejects_stream_usage: set[str] = set()

    # --- request --------------------------------------------------------------------
    def plan(self, instance: Any, kwargs: dict[str, Any]) -> OpenAIPlan:
        client = instance._client
        base_url = base_url_of(client)
        server = detect_server(base_url)
        provider = "azure.ai.openai" if "Azure" in type(client).__name__ else server.provider
        model = kwargs.get("model")
        model = model if isinstance(model, str) else None
        stream = kwargs.get("stream") is True
        attributes: dict[str, AttributeValue] = {
            semconv.OPERATION_NAME: self.operation,
            semconv.PROVIDER_NAME: provider,
        }
        if model:
            attributes[semconv.REQUEST_MODEL] = model
        if server.address:
            attributes[semconv.SERVER_ADDRESS] = server.address
        if server.port is not None:
            attributes[semconv.SERVER_PORT] = server.port
        if self.api != EMBEDDINGS:
            attributes[semconv.REQUEST_STREAM] = stream
        attributes.update(request_numbers(kwargs, _REQUEST_NUMBERS))
        stops = stop_sequences(kwargs.get("stop"))
        if stops:
            attributes[semconv.REQUEST_STOP_SEQUENCES] = stops
        tier = kwargs.get("service_tier")
        if isinstance(tier, str):
            attributes[semconv.REQUEST_SERVICE_TIER] = tier
        if self.settings.capture_content:
            attributes.update(self._input_content(kwargs))

        send, original = kwargs, None
        if stream and self.asks_stream_usage and base_url not in self.rejects_stream_usage:
            options = kwargs.get("stream_options")
            options = options or {}  # None and the SDK's NOT_GIVEN / omit sentinels (all falsy) mean unset
            # Only a mapping is extended; anything else is the caller's to send (and the API's to refuse).
            if isinstance(options, dict) and not options.get("include_usage"):
                send = {**kwargs, "stream_options": {**options, "include_usage": True}}
                original = kwargs
        request = Request(
            operation=self.operation,
            provider=provider,
            model=model,
            server_address=server.address,
            server_port=server.port,
            stream=stream,
            attributes=attributes,
            secrets=(getattr(client, "api_key", None) or "",),
        )
        return OpenAIPlan(request, send, base_url, original)

    def should_fall_back(self, plan: OpenAIPlan, exc: BaseException) -> bool:
        """A 400 that names the option we added; any other 400 is the caller's and is not sent twice."""
        if getattr(exc, "status_code", None) != 400:
            return False
        text = str(exc).lower()
        return "stream_options" in text or "include_usage" in text

    def fell_back(self, plan: OpenAIPlan) -> None:
        self.rejects_stream_usage.add(plan.base_url)

    # --- response -------------------------------------------------------------------
    def is_stream(self, result: Any) -> bool:
        return isinstance(result, self.stream_types)

    def is_raw_response(self, result: Any) -> bool:
        return is_raw_response(result, self.model_type)

    def record_response(self, call: LLMCall, response: Any) -> None:
        if self.api == RESPONSES:
            _record_responses_api(call, response, self.settings)
        elif self.api == EMBEDDINGS:
            _record_embeddings(call, response)
        else:
            _record_choices(call, response, self.settings)

    def stream_accumulator(self, call: LLMCall, plan: OpenAIPlan) -> Any:
        if self.api == RESPONSES:
            return ResponsesStreamAccumulator(self.settings)
        return ChunkStreamAccumulator(plan.hide_usage_chunk, self.settings)

    def _input_content(self, kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
        limit = self.settings.content_max_chars
        if self.api == CHAT:
            messages = kwargs.get("messages")
            if isinstance(messages, (list, tuple)):
                return {semconv.INPUT_MESSAGES: to_json([_chat_message(m, limit) for m in messages])}
        elif self.api == RESPONSES:
            out: dict[str, AttributeValue] = {}
            instructions = kwargs.get("instructions")
            if isinstance(instructions, str):
                out[semconv.SYSTEM_INSTRUCTIONS] = to_json([text_part(instructions, limit)])
            given = kwargs.get("input")
            if isinstance(given, str):
                out[semconv.INPUT_MESSAGES] = to_json([{"role": "user", "parts": [text_part(given, limit)]}])
            elif isinstance(given, (list, tuple)):
                out[semconv.INPUT_MESSAGES] = to_json([_chat_message(m, limit) for m in given])
            return out
        elif self.api == COMPLETIONS:
            prompt = kwargs.get("prompt")
            if isinstance(prompt, str):
                return {semconv.INPUT_MESSAGES: to_json([{"role": "user", "parts": [text_part(prompt, limit)]}])}
        return {}


# --- reading responses ----------------------------------------------------------------
def chat_usage(usage: Any) -> Usage | None:
    """Chat/completions usage: ``prompt_tokens`` already include cached ones."""
    if usage is None:
        return None
    read = CountReader()
    prompt_details = field(usage, "prompt_tokens_details")
    completion_details = field(usage, "completion_tokens_details")
    return Usage(
        input_tokens=read.count(field(usage, "prompt_tokens"), "prompt_tokens", required=True),
        output_tokens=read.count(field(usage, "completion_tokens"), "completion_tokens", required=True),
        # DeepSeek reports its cache hits as ``prompt_cache_hit_tokens`` (part of ``prompt_tokens``)
        cache_read_input_tokens=read.count(
            _first_present(field(prompt_details, "cached_tokens"), field(usage, "prompt_cache_hit_tokens")),
            "cached_tokens",
        ),
        reasoning_output_tokens=read.count(field(completion_details, "reasoning_tokens"), "reasoning_tokens"),
        audio_input_tokens=read.count(field(prompt_details, "audio_tokens"), "audio_tokens") or None,
        audio_output_tokens=read.count(field(completion_details, "audio_tokens"), "audio_tokens") or None,
        provider_cost=_number(field(usage, "cost")),
        problems=read.result(),
    )


def _first_present(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def _number(value: Any) -> float | None:
    """A cost the provider put in its usage (OpenRouter: ``usage.cost``, USD)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def responses_usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    read = CountReader()
    return Usage(
        input_tokens=read.count(field(usage, "input_tokens"), "input_tokens", required=True),
        output_tokens=read.count(field(usage, "output_tokens"), "output_tokens", required=True),
        cache_read_input_tokens=read.count(
            field(field(usage, "input_tokens_details"), "cached_tokens"), "input_tokens_details.cached_tokens"
        ),
        reasoning_output_tokens=read.count(
            field(field(usage, "output_tokens_details"), "reasoning_tokens"), "output_tokens_details.reasoning_tokens"
        ),
        problems=read.result(),
    )


def embeddings_usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    read = CountReader()
    return Usage(
        input_tokens=read.count(field(usage, "prompt_tokens"), "prompt_tokens", required=True),
        problems=read.result(),
    )


def _service_tier(response: Any) -> str | None:
    tier = field(response, "service_tier")
    return tier if isinstance(tier, str) else None


def _record_choices(call: LLMCall, response: Any, settings: Settings) -> None:
    choices = field(response, "choices") or []
    extra: dict[str, AttributeValue] = {}
    fingerprint = field(response, "system_fingerprint")
    if isinstance(fingerprint, str) and fingerprint:
        extra[semconv.RESPONSE_SYSTEM_FINGERPRINT] = fingerprint
    if settings.capture_content:
        extra[semconv.OUTPUT_MESSAGES] = to_json(
            [
                _output_message(
                    _choice_text(c),
                    field(c, "finish_reason"),
                    settings.content_max_chars,
                    field(field(c, "message"), "tool_calls"),
                )
                for c in choices
            ]
        )
    call.set_response(
        model=field(response, "model"),
        response_id=field(response, "id"),
        finish_reasons=[r for r in (field(c, "finish_reason") for c in choices) if isinstance(r, str)],
        usage=chat_usage(field(response, "usage")),
        service_tier=_service_tier(response),
        extra=extra,
    )


def _record_embeddings(call: LLMCall, response: Any) -> None:
    usage = field(response, "usage")
    data = field(response, "data") or []
    extra: dict[str, AttributeValue] = {}
    if data:
        vector = field(data[0], "embedding")
        if isinstance(vector, list):
            extra[semconv.EMBEDDINGS_DIMENSION_COUNT] = len(vector)
    call.set_response(
        model=field(response, "model"),
        usage=embeddings_usage(usage),
        extra=extra,
    )


_RESPONSE_STATUS_TO_FINISH = {"completed": "stop", "incomplete": "length", "failed": "error"}


def _record_responses_api(call: LLMCall, response: Any, settings: Settings) -> None:
    status = field(response, "status")
    finish: list[str] = []
    if isinstance(status, str):
        reason = field(field(response, "incomplete_details"), "reason")
        finish = [reason if isinstance(reason, str) else _RESPONSE_STATUS_TO_FINISH.get(status, status)]
    extra: dict[str, AttributeValue] = {}
    if settings.capture_content:
        text = field(response, "output_text")
        if not isinstance(text, str):
            text = _responses_output_text(response)
        extra[semconv.OUTPUT_MESSAGES] = to_json(
            [_output_message(text, finish[0] if finish else None, settings.content_max_chars, None)]
        )
    if status == "failed":
        code = field(field(response, "error"), "code")
        call.fail_with(code if isinstance(code, str) else "response_failed", "the response failed")
    call.set_response(
        model=field(response, "model"),
        response_id=field(response, "id"),
        finish_reasons=finish,
        usage=responses_usage(field(response, "usage")),
        service_tier=_service_tier(response),
        extra=extra,
    )


def _responses_output_text(response: Any) -> str:
    texts = []
    for item in field(response, "output") or []:
        for part in field(item, "content") or []:
            text = field(part, "text")
            if isinstance(text, str):
                texts.append(text)
    return "".join(texts)


# --- content shapes ---------------------------------------------------------------------
def _chat_message(message: Any, limit: int) -> dict[str, Any]:
    role = field(message, "role") or "user"
    parts: list[dict[str, Any]] = []
    content = field(message, "content")
    if isinstance(content, str):
        parts.append(text_part(content, limit))
    elif isinstance(content, (list, tuple)):
        for part in content:
            text = field(part, "text")
            if isinstance(text, str):
                parts.append(text_part(text, limit))
            else:
                parts.append({"type": str(field(part, "type") or "unknown")})
    for tool_call in field(message, "tool_calls") or []:
        function = field(tool_call, "function")
        parts.append(
            {
                "type": "tool_call",
                "id": field(tool_call, "id"),
                "name": field(function, "name"),
                "arguments": cut(str(field(function, "arguments") or ""), limit),
            }
        )
    if role == "tool":
        return {
            "role": "tool",
            "parts": [
                {
                    "type": "tool_call_response",
                    "id": field(message, "tool_call_id"),
                    "response": cut(str(content or ""), limit),
                }
            ],
        }
    return {"role": role, "parts": parts}


def _choice_text(choice: Any) -> str | None:
    message = field(choice, "message")
    text = field(message, "content") if message is not None else field(choice, "text")
    return text if isinstance(text, str) else None


def _output_message(text: str | None, finish_reason: Any, limit: int, tool_calls: Any) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [text_part(text, limit)] if text else []
    for tool_call in tool_calls or []:
        function = field(tool_call, "function")
        parts.append(
            {
                "type": "tool_call",
                "id": field(tool_call, "id"),
                "name": field(function, "name"),
                "arguments": cut(str(field(function, "arguments") or ""), limit),
            }
        )
    return {
        "role": "assistant",
        "parts": parts,
        "finish_reason": finish_reason if isinstance(finish_reason, str) else None,
    }


# --- streams ----------------------------------------------------------------------------
class ChunkStreamAccumulator:
    """Chat and completions chunks: id, model, finish reasons, usage (and text if captured).

    With ``hide_usage_chunk`` the usage-only chunk we asked for is hidden from the caller,
    who did not ask for it.
    """

    __slots__ = (
        "finish_reasons",
        "hide_usage_chunk",
        "model",
        "response_id",
        "service_tier",
        "settings",
        "system_fingerprint",
        "texts",
        "usage",
    )

    def __init__(self, hide_usage_chunk: bool, settings: Settings) -> None:
        self.hide_usage_chunk = hide_usage_chunk
        self.settings = settings
        self.response_id: str | None = None
        self.model: str | None = None
        self.finish_reasons: dict[int, str] = {}
        self.usage: Any = None
        self.texts: dict[int, list[str]] = {}
        self.service_tier: Any = None
        self.system_fingerprint: Any = None

    def hides(self, chunk: Any) -> bool:
        return self.hide_usage_chunk and not chunk.choices and chunk.usage is not None

    def on_item(self, chunk: Any) -> None:
        # Each field from the first chunk that has it: Azure's first chunk carries only
        # ``prompt_filter_results``, with empty ``id``, ``model`` and ``choices``.
        if not self.response_id:
            self.response_id = getattr(chunk, "id", None) or None
        if not self.model:
            self.model = getattr(chunk, "model", None) or None
        if not self.service_tier:
            self.service_tier = getattr(chunk, "service_tier", None) or None
        if not self.system_fingerprint:
            self.system_fingerprint = getattr(chunk, "system_fingerprint", None) or None
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = usage
        choices = getattr(chunk, "choices", None)
        if choices:
            for choice in choices:
                reason = choice.finish_reason
                if reason is not None:
                    self.finish_reasons[choice.index] = reason
                if self.settings.capture_content:
                    delta = getattr(choice, "delta", None)
                    text = getattr(delta, "content", None) if delta is not None else getattr(choice, "text", None)
                    if isinstance(text, str):
                        self.texts.setdefault(choice.index, []).append(text)

    def finish(self, call: LLMCall) -> None:
        extra: dict[str, AttributeValue] = {}
        if isinstance(self.system_fingerprint, str):
            extra[semconv.RESPONSE_SYSTEM_FINGERPRINT] = self.system_fingerprint
        if self.settings.capture_content:
            limit = self.settings.content_max_chars
            indexes = sorted(set(self.texts) | set(self.finish_reasons))
            extra[semconv.OUTPUT_MESSAGES] = to_json(
                [
                    _output_message("".join(self.texts.get(i, [])), self.finish_reasons.get(i), limit, None)
                    for i in indexes
                ]
            )
        call.set_response(
            model=self.model,
            response_id=self.response_id,
            finish_reasons=[self.finish_reasons[i] for i in sorted(self.finish_reasons)],
            usage=chat_usage(self.usage),
            service_tier=self.service_tier if isinstance(self.service_tier, str) else None,
            extra=extra,
        )


_FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesStreamAccumulator:
    """Responses API events: the final ``response.*`` event carries the whole response."""

    __slots__ = ("final", "first", "settings")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.first: Any = None
        self.final: Any = None

    def hides(self, event: Any) -> bool:
        return False

    def on_item(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind in _FINAL_RESPONSE_EVENTS:
            self.final = event.response
        elif self.first is None and kind == "response.created":
            self.first = event.response

    def finish(self, call: LLMCall) -> None:
        if self.final is not None:
            _record_responses_api(call, self.final, self.settings)
        elif self.first is not None:
            call.set_response(model=field(self.first, "model"), response_id=field(self.first, "id"))
