"""The ``mistralai`` SDK (1.x as ``mistralai``, 2.x and later as ``mistralai.client``): chat, FIM and
embeddings, sync and async.

Mistral's API answers in OpenAI's shapes (``choices``, ``usage.prompt_tokens``...), so the OpenAI
readers read the responses; the SDK itself is Speakeasy-generated and differs in everything else:
keyword-only methods (``chat.complete``, ``chat.stream``, ``*_async``), the server URL and API key in
``sdk_configuration``, streams of ``CompletionEvent`` objects whose ``data`` is the chunk (the last
one carries the usage, always), and one exception class for every HTTP error (``SDKError``), whose
``status_code`` becomes ``error.type`` (``429``, ``401``...), as the conventions allow for HTTP errors.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.util.types import AttributeValue

from aimon_otel import semconv
from aimon_otel.instrumentation.content import field, to_json
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.providers.base import Endpoint, Plan, StreamReader, Target
from aimon_otel.instrumentation.providers.detect import detect_server
from aimon_otel.instrumentation.providers.openai import (
    ChunkStreamReader,
    chat_message,
    embeddings_usage,
    record_choices,
)
from aimon_otel.instrumentation.providers.request import request_numbers, stop_sequences

PROVIDER = "mistral_ai"
DEFAULT_SERVER = "https://api.mistral.ai"
_NUMBERS = (
    ("max_tokens", semconv.REQUEST_MAX_TOKENS),
    ("temperature", semconv.REQUEST_TEMPERATURE),
    ("top_p", semconv.REQUEST_TOP_P),
    ("random_seed", semconv.REQUEST_SEED),
    ("n", semconv.REQUEST_CHOICE_COUNT),
    ("frequency_penalty", semconv.REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", semconv.REQUEST_PRESENCE_PENALTY),
)
_STREAM_TYPES = frozenset({"EventStream", "EventStreamAsync", "generator", "async_generator"})
"""2.x streams are ``EventStream`` objects, 1.x's generators."""


def error_type(exc: BaseException) -> str:
    """``SDKError`` names no error: its HTTP status says which (``429`` counts in the rate-limit alert)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and type(exc).__name__ == "SDKError":
        return str(status)
    return type(exc).__qualname__


def _server_url(instance: Any, kwargs: dict[str, Any]) -> str:
    url = kwargs.get("server_url")
    if isinstance(url, str) and url:
        return url
    configuration: Any = getattr(instance, "sdk_configuration", None)
    try:
        url, _ = configuration.get_server_details()
    except Exception:  # an SDK of another shape: the public API's address
        url = None
    return url if isinstance(url, str) and url else DEFAULT_SERVER


def _api_key(instance: Any) -> str:
    security = getattr(getattr(instance, "sdk_configuration", None), "security", None)
    if callable(security):  # a function the SDK calls for each request: not read here
        return ""
    key = field(security, "api_key")
    return key if isinstance(key, str) else ""


class MistralEndpoint(Endpoint):
    operation = semconv.OP_CHAT
    streaming = False

    def plan(self, instance: Any, kwargs: dict[str, Any]) -> Plan:
        server = detect_server(_server_url(instance, kwargs), PROVIDER)
        model = kwargs.get("model")
        attributes: dict[str, AttributeValue] = {}
        if self.operation != semconv.OP_EMBEDDINGS:
            attributes = request_numbers(kwargs, _NUMBERS)
            attributes[semconv.REQUEST_STREAM] = self.streaming
            stops = stop_sequences(kwargs.get("stop"))
            if stops:
                attributes[semconv.REQUEST_STOP_SEQUENCES] = stops
            if self.settings.capture_content:
                attributes.update(self.input_content(kwargs))
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
                error_type_of=error_type,
            ),
            kwargs,
        )

    def input_content(self, kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
        messages = kwargs.get("messages")
        if isinstance(messages, (list, tuple)):
            limit = self.settings.content_max_chars
            return {semconv.INPUT_MESSAGES: to_json([chat_message(m, limit) for m in messages])}
        return {}

    def is_stream(self, result: Any) -> bool:
        return type(result).__name__ in _STREAM_TYPES

    def is_raw_response(self, result: Any) -> bool:
        return False

    def record_response(self, invocation: Invocation, response: Any) -> None:
        record_choices(invocation, response, self.settings)

    def stream_reader(self, invocation: Invocation, plan: Plan) -> StreamReader:
        return MistralChunkReader(False, self.settings)


class ChatComplete(MistralEndpoint):
    pass


class ChatStream(MistralEndpoint):
    streaming = True


class FimComplete(MistralEndpoint):
    """Fill-in-the-middle (Codestral): a chat-shaped answer to a ``prompt`` and ``suffix``."""

    def input_content(self, kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
        return {}


class FimStream(FimComplete):
    streaming = True


class Embeddings(MistralEndpoint):
    operation = semconv.OP_EMBEDDINGS

    def record_response(self, invocation: Invocation, response: Any) -> None:
        data = field(response, "data") or []
        vector = field(data[0], "embedding") if data else None
        attributes: dict[str, AttributeValue] = {}
        if isinstance(vector, list):
            attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = len(vector)
        invocation.answered(
            model=field(response, "model"),
            response_id=field(response, "id"),
            usage=embeddings_usage(field(response, "usage")),
            attributes=attributes,
        )


class MistralChunkReader(ChunkStreamReader):
    """``CompletionEvent`` objects: the chunk is their ``data``."""

    __slots__ = ()

    def on_item(self, chunk: Any) -> None:
        super().on_item(getattr(chunk, "data", chunk))


def _targets(module: str) -> tuple[Target, ...]:
    return (
        Target(f"{module}.chat", "Chat.complete", ChatComplete, False),
        Target(f"{module}.chat", "Chat.complete_async", ChatComplete, True),
        Target(f"{module}.chat", "Chat.stream", ChatStream, False),
        Target(f"{module}.chat", "Chat.stream_async", ChatStream, True),
        Target(f"{module}.fim", "Fim.complete", FimComplete, False),
        Target(f"{module}.fim", "Fim.complete_async", FimComplete, True),
        Target(f"{module}.fim", "Fim.stream", FimStream, False),
        Target(f"{module}.fim", "Fim.stream_async", FimStream, True),
        Target(f"{module}.embeddings", "Embeddings.create", Embeddings, False),
        Target(f"{module}.embeddings", "Embeddings.create_async", Embeddings, True),
    )


TARGETS = _targets("mistralai.client")
"""mistralai 2.x and later."""
TARGETS_V1 = _targets("mistralai")
"""mistralai 1.x: the same classes one package up."""
