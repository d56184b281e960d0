"""The ``cohere`` SDK's v2 API (``ClientV2``, ``AsyncClientV2``): ``chat``, ``chat_stream``, ``embed``, ``rerank``.

Cohere bills ``meta.billed_units`` (``usage.billed_units`` in chat), which can differ a lot from the
tokens the model saw (``tokens``: with the prompt template, tool and safety preambles). The span's
``gen_ai.usage.*`` and the price are the billed counts; the model's counts are kept beside them as
``aimon.usage.model_input_tokens`` / ``aimon.usage.model_output_tokens``. A rerank is billed per search
unit (``aimon.usage.search_units``); genai-prices has no such price, so reranks are ``unknown_model``,
never $0. ``chat_stream`` is a generator (async generator): the request leaves when it is first
iterated, so a refused call still sends nothing.
"""

from __future__ import annotations

import types
from typing import Any

from opentelemetry.util.types import AttributeValue

from aimon_otel import semconv
from aimon_otel.instrumentation.content import assistant_output, field, text_part, to_json
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.providers.base import Endpoint, Plan, StreamReader, Target
from aimon_otel.instrumentation.providers.detect import detect_server
from aimon_otel.instrumentation.providers.request import stop_sequences
from aimon_otel.instrumentation.usage import CountReader, Usage

PROVIDER = "cohere"
DEFAULT_BASE_URL = "https://api.cohere.com"
MODEL_INPUT_TOKENS = "aimon.usage.model_input_tokens"
MODEL_OUTPUT_TOKENS = "aimon.usage.model_output_tokens"
SEARCH_UNITS = "aimon.usage.search_units"
_NUMBERS = (
    ("max_tokens", semconv.REQUEST_MAX_TOKENS),
    ("temperature", semconv.REQUEST_TEMPERATURE),
    ("p", semconv.REQUEST_TOP_P),
    ("k", semconv.REQUEST_TOP_K),
    ("seed", semconv.REQUEST_SEED),
    ("frequency_penalty", semconv.REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", semconv.REQUEST_PRESENCE_PENALTY),
)


def billed_usage(usage: Any, embeddings: bool = False) -> tuple[Usage | None, dict[str, AttributeValue]]:
    """The billed counts as the call's usage, and the model's own counts as attributes beside them."""
    billed = field(usage, "billed_units")
    attributes: dict[str, AttributeValue] = {}
    tokens = field(usage, "tokens")
    for key, name in (("input_tokens", MODEL_INPUT_TOKENS), ("output_tokens", MODEL_OUTPUT_TOKENS)):
        value = field(tokens, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes[name] = int(value)
    if billed is None:
        return None, attributes
    read = CountReader()
    input_tokens = read.count(field(billed, "input_tokens"), "billed_units.input_tokens", required=True)
    output_tokens = 0 if embeddings else read.count(field(billed, "output_tokens"), "billed_units.output_tokens")
    cached = read.count(field(usage, "cached_tokens"), "cached_tokens")
    return (
        Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens or 0,
            cache_read_input_tokens=cached or None,
            problems=read.result(),
        ),
        attributes,
    )


def _client_wrapper(instance: Any) -> Any:
    return getattr(instance, "_client_wrapper", None) or getattr(
        getattr(instance, "_raw_client", None), "_client_wrapper", None
    )


def _base_url(instance: Any) -> str:
    wrapper = _client_wrapper(instance)
    try:
        url = wrapper.get_base_url()
    except Exception:  # a client of another shape: the public API's address
        url = None
    return url if isinstance(url, str) and url else DEFAULT_BASE_URL


def _api_key(instance: Any) -> str:
    token = getattr(_client_wrapper(instance), "_token", None)
    return token if isinstance(token, str) else ""  # a token function is the app's: not called here


class CohereEndpoint(Endpoint):
    operation = semconv.OP_CHAT
    streaming = False

    def plan(self, instance: Any, kwargs: dict[str, Any]) -> Plan:
        server = detect_server(_base_url(instance), PROVIDER)
        model = kwargs.get("model")
        attributes: dict[str, AttributeValue] = {}
        if self.operation == semconv.OP_CHAT:
            for key, name in _NUMBERS:
                value = kwargs.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    attributes[name] = value
            attributes[semconv.REQUEST_STREAM] = self.streaming
            stops = stop_sequences(kwargs.get("stop_sequences"))
            if stops:
                attributes[semconv.REQUEST_STOP_SEQUENCES] = stops
            if self.settings.capture_content:
                attributes.update(_input(kwargs.get("messages"), self.settings.content_max_chars))
        return Plan(
            Invocation(
                operation=self.operation,
                provider=PROVIDER,
                request_model=model if isinstance(model, str) else None,
                server_address=server.address,
                server_port=server.port,
                stream=self.streaming,
                request_attributes=attributes,
                secrets=(_api_key(instance),),
            ),
            kwargs,
        )

    def is_stream(self, result: Any) -> bool:
        return isinstance(result, (types.GeneratorType, types.AsyncGeneratorType))

    def is_raw_response(self, result: Any) -> bool:
        return False

    def record_response(self, invocation: Invocation, response: Any) -> None:
        usage, attributes = billed_usage(field(response, "usage"))
        if self.settings.capture_content:
            attributes.update(
                assistant_output(_texts(field(field(response, "message"), "content")), self.settings.content_max_chars)
            )
        reason = field(response, "finish_reason")
        invocation.answered(
            response_id=field(response, "id"),
            finish_reasons=[str(reason).lower()] if reason else None,
            usage=usage,
            attributes=attributes,
        )

    def stream_reader(self, invocation: Invocation, plan: Plan) -> StreamReader:
        return CohereStreamReader(self.settings.capture_content, self.settings.content_max_chars)


class Chat(CohereEndpoint):
    pass


class ChatStream(CohereEndpoint):
    streaming = True


class Embed(CohereEndpoint):
    operation = semconv.OP_EMBEDDINGS

    def record_response(self, invocation: Invocation, response: Any) -> None:
        usage, attributes = billed_usage(field(response, "meta"), embeddings=True)
        embeddings = field(response, "embeddings")
        vectors = (
            field(embeddings, "float_") or field(embeddings, "float")
            if not isinstance(embeddings, list)
            else embeddings
        )
        if isinstance(vectors, list) and vectors and isinstance(vectors[0], list):
            attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = len(vectors[0])
        invocation.answered(response_id=field(response, "id"), usage=usage, attributes=attributes)


class Rerank(CohereEndpoint):
    operation = "rerank"

    def record_response(self, invocation: Invocation, response: Any) -> None:
        billed = field(field(response, "meta"), "billed_units")
        units = field(billed, "search_units")
        attributes: dict[str, AttributeValue] = {}
        if isinstance(units, (int, float)) and not isinstance(units, bool):
            attributes[SEARCH_UNITS] = int(units)
        # billed per search unit, which no price list here knows: counted, left unpriced (never $0)
        usage = Usage(input_tokens=0, output_tokens=0) if billed is not None else None
        invocation.answered(response_id=field(response, "id"), usage=usage, attributes=attributes)


class CohereStreamReader:
    """v2 stream events: ``message-start`` has the id, ``content-delta`` the text, ``message-end`` the
    finish reason and the usage."""

    __slots__ = ("capture", "max_chars", "reason", "response_id", "texts", "usage")

    def __init__(self, capture: bool, max_chars: int) -> None:
        self.capture = capture
        self.max_chars = max_chars
        self.response_id: str | None = None
        self.reason: Any = None
        self.usage: Any = None
        self.texts: list[str] = []

    def on_item(self, event: Any) -> None:
        kind = field(event, "type")
        if kind == "message-start":
            self.response_id = field(event, "id")
        elif kind == "message-end":
            delta = field(event, "delta")
            self.reason = field(delta, "finish_reason")
            self.usage = field(delta, "usage")
        elif kind == "content-delta" and self.capture:
            text = field(field(field(field(event, "delta"), "message"), "content"), "text")
            if isinstance(text, str):
                self.texts.append(text)

    def hides(self, event: Any) -> bool:
        return False

    def finish(self, invocation: Invocation) -> None:
        usage, attributes = billed_usage(self.usage)
        if self.capture:
            attributes.update(assistant_output("".join(self.texts), self.max_chars))
        invocation.answered(
            response_id=self.response_id,
            finish_reasons=[str(self.reason).lower()] if self.reason else None,
            usage=usage,
            attributes=attributes,
        )


def _texts(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(t for part in content or () if isinstance(t := field(part, "text"), str))


def _input(messages: Any, max_chars: int) -> dict[str, AttributeValue]:
    found = []
    for message in messages or ():
        text = _texts(field(message, "content"))
        if text:
            role = field(message, "role")
            found.append({"role": role if isinstance(role, str) else "user", "parts": [text_part(text, max_chars)]})
    return {semconv.INPUT_MESSAGES: to_json(found)} if found else {}


TARGETS: tuple[Target, ...] = (
    Target("cohere.v2.client", "V2Client.chat", Chat, False),
    Target("cohere.v2.client", "AsyncV2Client.chat", Chat, True),
    # chat_stream is a generator function (async: an async generator function): calling it returns the stream
    Target("cohere.v2.client", "V2Client.chat_stream", ChatStream, False),
    Target("cohere.v2.client", "AsyncV2Client.chat_stream", ChatStream, False),
    Target("cohere.v2.client", "V2Client.embed", Embed, False),
    Target("cohere.v2.client", "AsyncV2Client.embed", Embed, True),
    Target("cohere.v2.client", "V2Client.rerank", Rerank, False),
    Target("cohere.v2.client", "AsyncV2Client.rerank", Rerank, True),
)
