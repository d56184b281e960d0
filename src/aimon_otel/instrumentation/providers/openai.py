"""The ``openai`` SDK (1.40 through 3.x): which methods we wrap, and how each API reads.

One endpoint type per API: chat completions (which alone asks streams for their usage),
legacy completions (the same chunk shapes), responses, embeddings. Also used for every
OpenAI-compatible provider the SDK is pointed at (Azure, OpenRouter, Groq, ...);
:mod:`aimon_otel.instrumentation.providers.detect` tells them apart by base URL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from opentelemetry.util.types import AttributeValue

from aimon_otel import semconv
from aimon_otel.config import Settings
from aimon_otel.instrumentation.content import cut, field, fields, text_part, to_json
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.providers.base import Endpoint, Plan, Target
from aimon_otel.instrumentation.providers.detect import base_url_of, detect_server
from aimon_otel.instrumentation.providers.request import request_numbers, stop_sequences
from aimon_otel.instrumentation.usage import CountReader, Usage

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


class OpenAIEndpoint(Endpoint):
    """What every openai SDK API shares: the client, its provider and the request's options."""

    operation = semconv.OP_CHAT
    streams = True
    """The API takes ``stream=True`` (embeddings do not)."""
    default_provider = "openai"
    """The provider of a base URL no known host names: the SDK's own (a proxy, a gateway)."""

    def plan(self, instance: Any, kwargs: dict[str, Any]) -> Plan:
        client = instance._client
        base_url = base_url_of(client)
        server = detect_server(base_url, self.default_provider)
        provider = "azure.ai.openai" if "Azure" in type(client).__name__ else server.provider
        model = kwargs.get("model")
        stream = kwargs.get("stream") is True
        attributes = request_numbers(kwargs, _REQUEST_NUMBERS)
        if self.streams:
            attributes[semconv.REQUEST_STREAM] = stream
        stops = stop_sequences(kwargs.get("stop"))
        if stops:
            attributes[semconv.REQUEST_STOP_SEQUENCES] = stops
        tier = kwargs.get("service_tier")
        if isinstance(tier, str):
            attributes[semconv.REQUEST_SERVICE_TIER] = tier
        if self.settings.capture_content:
            attributes.update(self.input_content(kwargs))
        invocation = Invocation(
            operation=self.operation,
            provider=provider,
            request_model=model if isinstance(model, str) else None,
            server_address=server.address,
            server_port=server.port,
            stream=stream,
            request_attributes=attributes,
            secrets=(getattr(client, "api_key", None) or "",),
        )
        return self.sending(invocation, kwargs, base_url)

    def sending(self, invocation: Invocation, kwargs: dict[str, Any], base_url: str) -> Plan:
        """What to send: the caller's arguments, unless an API adds to them."""
        return Plan(invocation, kwargs)

    def input_content(self, kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
        return {}


@dataclass(slots=True)
class StreamUsagePlan(Plan):
    """A chat stream sent with ``stream_options.include_usage`` added by us."""

    base_url: str = ""
    original_kwargs: dict[str, Any] | None = None
    """The caller's kwargs when we added ``stream_options``; None when we added nothing."""

    def without_additions(self) -> Plan | None:
        if self.original_kwargs is None:
            return None
        return Plan(self.invocation, self.original_kwargs)


class ChatCompletions(OpenAIEndpoint):
    """``chat.completions``: choices and chunks. Streams report usage only if asked, so we ask,
    hide the usage-only chunk the caller did not ask for, and stop asking an endpoint that refuses."""

    def __init__(self, settings: Settings, stream_types: tuple[type, ...]) -> None:
        super().__init__(settings, stream_types)
        # Base URLs that answered 400 to ``stream_options`` and then accepted the call without it.
        self.rejects_stream_usage: set[str] = set()

    def sending(self, invocation: Invocation, kwargs: dict[str, Any], base_url: str) -> Plan:
        if invocation.stream and self.settings.openai_stream_usage and base_url not in self.rejects_stream_usage:
            options = kwargs.get("stream_options")
            options = options or {}  # None and the SDK's NOT_GIVEN / omit sentinels (all falsy) mean unset
            # Only a mapping is extended; anything else is the caller's to send (and the API's to refuse).
            if isinstance(options, dict) and not options.get("include_usage"):
                send = {**kwargs, "stream_options": {**options, "include_usage": True}}
                return StreamUsagePlan(invocation, send, base_url, kwargs)
        return StreamUsagePlan(invocation, kwargs, base_url, None)

    def should_fall_back(self, plan: Plan, exc: BaseException) -> bool:
        """A 400 that names the option we added; any other 400 is the caller's and is not sent twice."""
        if getattr(exc, "status_code", None) != 400:
            return False
        text = str(exc).lower()
        return "stream_options" in text or "include_usage" in text

    def fell_back(self, plan: Plan) -> None:
        if isinstance(plan, StreamUsagePlan):
            self.rejects_stream_usage.add(plan.base_url)

    def record_response(self, invocation: Invocation, response: Any) -> None:
        record_choices(invocation, response, self.settings)

    def stream_reader(self, invocation: Invocation, plan: Plan) -> ChunkStreamReader:
        hide = isinstance(plan, StreamUsagePlan) and plan.original_kwargs is not None
        return ChunkStreamReader(hide, self.settings)

    def input_content(self, kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
        messages = kwargs.get("messages")
        if isinstance(messages, (list, tuple)):
            limit = self.settings.content_max_chars
            return {semconv.INPUT_MESSAGES: to_json([chat_message(m, limit) for m in messages])}
        return {}


class Completions(ChatCompletions):
    """Legacy ``completions``: the same choice and chunk shapes (and stream usage) with a text prompt."""

    operation = semconv.OP_TEXT_COMPLETION

    def input_content(self, kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
        prompt = kwargs.get("prompt")
        if isinstance(prompt, str):
            limit = self.settings.content_max_chars
            return {semconv.INPUT_MESSAGES: to_json([{"role": "user", "parts": [text_part(prompt, limit)]}])}
        return {}


class Responses(OpenAIEndpoint):
    """``responses``: one response object; streams end with a ``response.*`` event carrying it whole."""

    def record_response(self, invocation: Invocation, response: Any) -> None:
        _record_responses_api(invocation, response, self.settings)

    def stream_reader(self, invocation: Invocation, plan: Plan) -> ResponsesStreamReader:
        return ResponsesStreamReader(self.settings)

    def input_content(self, kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
        limit = self.settings.content_max_chars
        out: dict[str, AttributeValue] = {}
        instructions = kwargs.get("instructions")
        if isinstance(instructions, str):
            out[semconv.SYSTEM_INSTRUCTIONS] = to_json([text_part(instructions, limit)])
        given = kwargs.get("input")
        if isinstance(given, str):
            out[semconv.INPUT_MESSAGES] = to_json([{"role": "user", "parts": [text_part(given, limit)]}])
        elif isinstance(given, (list, tuple)):
            out[semconv.INPUT_MESSAGES] = to_json([chat_message(m, limit) for m in given])
        return out


class Embeddings(OpenAIEndpoint):
    """``embeddings``: input tokens only, and the vectors' size."""

    operation = semconv.OP_EMBEDDINGS
    streams = False

    def record_response(self, invocation: Invocation, response: Any) -> None:
        _record_embeddings(invocation, response)


class Images(OpenAIEndpoint):
    """``images.generate`` / ``images.edit``: gpt-image-* report token usage (text and image input,
    image output); DALL·E reports none and is priced per image by size and quality (override file)."""

    operation = semconv.OP_GENERATE_CONTENT
    streams = True

    def plan(self, instance: Any, kwargs: dict[str, Any]) -> Plan:
        plan = super().plan(instance, kwargs)
        attributes = plan.invocation.request_attributes
        attributes[semconv.OUTPUT_TYPE] = "image"
        count = kwargs.get("n")
        if isinstance(count, int) and not isinstance(count, bool):
            attributes[semconv.REQUEST_CHOICE_COUNT] = count
        for key, name in (("size", semconv.IMAGE_SIZE), ("quality", semconv.IMAGE_QUALITY)):
            value = kwargs.get(key)
            if isinstance(value, str):
                attributes[name] = value
        return plan

    def record_response(self, invocation: Invocation, response: Any) -> None:
        data = field(response, "data") or []
        usage = image_usage(field(response, "usage"))
        if usage is None:  # per image: how many, at which size and quality (as asked; "auto" as answered)
            asked = invocation.request_attributes
            usage = Usage(
                images=len(data),
                image_size=_text(field(response, "size")) or _text(asked.get(semconv.IMAGE_SIZE)),
                image_quality=_text(field(response, "quality")) or _text(asked.get(semconv.IMAGE_QUALITY)),
            )
        invocation.answered(usage=usage, attributes={semconv.IMAGE_COUNT: len(data)})

    def stream_reader(self, invocation: Invocation, plan: Plan) -> ImageStreamReader:
        return ImageStreamReader()


class ImageStreamReader:
    """Image streams send partial images, then a ``*.completed`` event with the usage."""

    __slots__ = ("images", "usage")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.images = 0

    def on_item(self, event: Any) -> None:
        kind = field(event, "type")
        if isinstance(kind, str) and kind.endswith(".completed"):
            self.images += 1
            usage = image_usage(field(event, "usage"))
            if usage is not None:
                self.usage = usage

    def hides(self, event: Any) -> bool:
        return False

    def finish(self, invocation: Invocation) -> None:
        invocation.answered(usage=self.usage, attributes={semconv.IMAGE_COUNT: self.images})


def image_usage(usage: Any) -> Usage | None:
    """gpt-image-* usage: ``input_tokens`` (text and image, detailed) and ``output_tokens`` (image)."""
    if usage is None:
        return None
    read = CountReader()
    details = field(usage, "input_tokens_details")
    return Usage(
        input_tokens=read.count(field(usage, "input_tokens"), "input_tokens", required=True),
        output_tokens=read.count(field(usage, "output_tokens"), "output_tokens", required=True),
        image_input_tokens=read.count(field(details, "image_tokens"), "image_tokens"),
        cache_read_input_tokens=read.count(field(details, "cached_tokens"), "cached_tokens"),
        problems=read.result(),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# What is wrapped, as data. Methods missing from the installed SDK are skipped.
# ``chat.completions.stream`` and ``responses.stream`` call ``create`` and so are covered.
TARGETS: tuple[Target, ...] = (
    Target("openai.resources.chat.completions", "Completions.create", ChatCompletions, False),
    Target("openai.resources.chat.completions", "AsyncCompletions.create", ChatCompletions, True),
    Target("openai.resources.chat.completions", "Completions.parse", ChatCompletions, False),
    Target("openai.resources.chat.completions", "AsyncCompletions.parse", ChatCompletions, True),
    Target("openai.resources.beta.chat.completions", "Completions.parse", ChatCompletions, False),
    Target("openai.resources.beta.chat.completions", "AsyncCompletions.parse", ChatCompletions, True),
    Target("openai.resources.responses", "Responses.create", Responses, False),
    Target("openai.resources.responses", "AsyncResponses.create", Responses, True),
    Target("openai.resources.responses", "Responses.parse", Responses, False),
    Target("openai.resources.responses", "AsyncResponses.parse", Responses, True),
    Target("openai.resources.embeddings", "Embeddings.create", Embeddings, False),
    Target("openai.resources.embeddings", "AsyncEmbeddings.create", Embeddings, True),
    Target("openai.resources.completions", "Completions.create", Completions, False),
    Target("openai.resources.completions", "AsyncCompletions.create", Completions, True),
    Target("openai.resources.images", "Images.generate", Images, False),
    Target("openai.resources.images", "AsyncImages.generate", Images, True),
    Target("openai.resources.images", "Images.edit", Images, False),
    Target("openai.resources.images", "AsyncImages.edit", Images, True),
)


# --- reading responses ----------------------------------------------------------------
def chat_usage(usage: Any) -> Usage | None:
    """Chat/completions usage: ``prompt_tokens`` already include cached ones."""
    if usage is None:
        return None
    read = CountReader()
    prompt, completion, prompt_details, completion_details, cache_hits, cost = fields(usage, _CHAT_USAGE)
    cached, audio_in = fields(prompt_details, _PROMPT_DETAILS)
    reasoning, audio_out = fields(completion_details, _COMPLETION_DETAILS)
    return Usage(
        input_tokens=read.count(prompt, "prompt_tokens", required=True),
        output_tokens=read.count(completion, "completion_tokens", required=True),
        # DeepSeek reports its cache hits as ``prompt_cache_hit_tokens`` (part of ``prompt_tokens``)
        cache_read_input_tokens=read.count(_first_present(cached, cache_hits), "cached_tokens"),
        reasoning_output_tokens=read.count(reasoning, "reasoning_tokens"),
        audio_input_tokens=read.count(audio_in, "audio_tokens") or None,
        audio_output_tokens=read.count(audio_out, "audio_tokens") or None,
        provider_cost=_number(cost),
        problems=read.result(),
    )


_CHAT_USAGE = (
    "prompt_tokens",
    "completion_tokens",
    "prompt_tokens_details",
    "completion_tokens_details",
    "prompt_cache_hit_tokens",
    "cost",
)
_PROMPT_DETAILS = ("cached_tokens", "audio_tokens")
_COMPLETION_DETAILS = ("reasoning_tokens", "audio_tokens")


def _first_present(first: Any, second: Any) -> Any:
    return first if first is not None else second


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


def record_choices(invocation: Invocation, response: Any, settings: Settings) -> None:
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
    model, response_id, usage, tier = fields(response, _CHAT_RESPONSE)
    invocation.answered(
        model=model,
        response_id=response_id,
        finish_reasons=[r for r in (field(c, "finish_reason") for c in choices) if isinstance(r, str)],
        usage=chat_usage(usage),
        service_tier=tier if isinstance(tier, str) else None,
        attributes=extra,
    )


_CHAT_RESPONSE = ("model", "id", "usage", "service_tier")


def _record_embeddings(invocation: Invocation, response: Any) -> None:
    usage = field(response, "usage")
    data = field(response, "data") or []
    extra: dict[str, AttributeValue] = {}
    if data:
        vector = field(data[0], "embedding")
        if isinstance(vector, list):
            extra[semconv.EMBEDDINGS_DIMENSION_COUNT] = len(vector)
    invocation.answered(model=field(response, "model"), usage=embeddings_usage(usage), attributes=extra)


_RESPONSE_STATUS_TO_FINISH = {"completed": "stop", "incomplete": "length", "failed": "error"}


def _record_responses_api(invocation: Invocation, response: Any, settings: Settings) -> None:
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
        invocation.failed(code if isinstance(code, str) else "response_failed", "the response failed")
    invocation.answered(
        model=field(response, "model"),
        response_id=field(response, "id"),
        finish_reasons=finish,
        usage=responses_usage(field(response, "usage")),
        service_tier=_service_tier(response),
        attributes=extra,
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
def chat_message(message: Any, limit: int) -> dict[str, Any]:
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
class ChunkStreamReader:
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

    def finish(self, invocation: Invocation) -> None:
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
        invocation.answered(
            model=self.model,
            response_id=self.response_id,
            finish_reasons=[self.finish_reasons[i] for i in sorted(self.finish_reasons)],
            usage=chat_usage(self.usage),
            service_tier=self.service_tier if isinstance(self.service_tier, str) else None,
            attributes=extra,
        )


_FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesStreamReader:
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

    def finish(self, invocation: Invocation) -> None:
        if self.final is not None:
            _record_responses_api(invocation, self.final, self.settings)
        elif self.first is not None:
            invocation.answered(model=field(self.first, "model"), response_id=field(self.first, "id"))
