"""The ``ollama`` SDK: ``chat``, ``generate``, ``embed`` and legacy ``embeddings``, sync and async,
module functions (``ollama.chat(...)``) included.

Usage is Ollama's own: ``prompt_eval_count`` input tokens, ``eval_count`` output tokens, on the
response or a stream's last (``done``) chunk. Local models have no price: they are ``unknown_model``
(never $0) until the pricing file prices them, with provider ``ollama`` (a price of 0 there says
"free" on purpose). ``ResponseError`` names no error: its HTTP status becomes ``error.type``.
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

PROVIDER = "ollama"
DEFAULT_HOST = "http://127.0.0.1:11434"
_OPTION_NUMBERS = (
    ("num_predict", semconv.REQUEST_MAX_TOKENS),
    ("temperature", semconv.REQUEST_TEMPERATURE),
    ("top_p", semconv.REQUEST_TOP_P),
    ("top_k", semconv.REQUEST_TOP_K),
    ("seed", semconv.REQUEST_SEED),
    ("frequency_penalty", semconv.REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", semconv.REQUEST_PRESENCE_PENALTY),
)
MODULE_FUNCTIONS = ("chat", "generate", "embed", "embeddings")
"""``ollama.chat`` and the rest are bound methods of a default client, bound at import: rebound when the
class is wrapped or unwrapped, so module calls follow."""


def error_type(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status > 0 and type(exc).__name__ == "ResponseError":
        return str(status)
    return type(exc).__qualname__


def ollama_usage(response: Any, embeddings: bool = False) -> Usage | None:
    read = CountReader()
    prompt = field(response, "prompt_eval_count")
    if prompt is None and field(response, "eval_count") is None:
        return None
    output = 0 if embeddings else read.count(field(response, "eval_count"), "eval_count")
    return Usage(
        # a prompt served whole from Ollama's cache reports no prompt_eval_count: nothing was evaluated
        input_tokens=read.count(prompt, "prompt_eval_count") or 0,
        output_tokens=output or 0,
        problems=read.result(),
    )


def _host(instance: Any) -> str:
    client = getattr(instance, "_client", None)
    url = getattr(client, "base_url", None)
    return str(url) if url is not None else DEFAULT_HOST


class OllamaEndpoint(Endpoint):
    operation = semconv.OP_CHAT
    embeddings = False

    def plan(self, instance: Any, kwargs: dict[str, Any]) -> Plan:
        server = detect_server(_host(instance), PROVIDER)
        model = kwargs.get("model")
        stream = kwargs.get("stream") is True
        attributes: dict[str, AttributeValue] = {}
        if not self.embeddings:
            attributes[semconv.REQUEST_STREAM] = stream
            options = kwargs.get("options")
            for key, name in _OPTION_NUMBERS:
                value = field(options, key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    attributes[name] = value
            stops = stop_sequences(field(options, "stop"))
            if stops:
                attributes[semconv.REQUEST_STOP_SEQUENCES] = stops
            if self.settings.capture_content:
                attributes.update(self.input_content(kwargs))
        return Plan(
            Invocation(
                operation=self.operation,
                provider=PROVIDER,
                request_model=model if isinstance(model, str) and model else None,
                server_address=server.address,
                server_port=server.port,
                stream=stream,
                request_attributes=attributes,
                error_type_of=error_type,
            ),
            kwargs,
        )

    def input_content(self, kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
        return {}

    def is_stream(self, result: Any) -> bool:
        return isinstance(result, (types.GeneratorType, types.AsyncGeneratorType))

    def is_raw_response(self, result: Any) -> bool:
        return False

    def record_response(self, invocation: Invocation, response: Any) -> None:
        attributes: dict[str, AttributeValue] = {}
        if self.settings.capture_content:
            attributes = assistant_output(self.text_of(response), self.settings.content_max_chars)
        reason = field(response, "done_reason")
        invocation.answered(
            model=field(response, "model"),
            finish_reasons=[reason] if isinstance(reason, str) and reason else None,
            usage=ollama_usage(response),
            attributes=attributes,
        )

    def text_of(self, response: Any) -> str | None:
        return None

    def stream_reader(self, invocation: Invocation, plan: Plan) -> StreamReader:
        return OllamaStreamReader(self)


class Chat(OllamaEndpoint):
    def input_content(self, kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
        messages = []
        for message in kwargs.get("messages") or ():
            content = field(message, "content")
            if isinstance(content, str):
                role = field(message, "role")
                messages.append({"role": role if isinstance(role, str) else "user",
                                 "parts": [text_part(content, self.settings.content_max_chars)]})  # fmt: skip
        return {semconv.INPUT_MESSAGES: to_json(messages)} if messages else {}

    def text_of(self, response: Any) -> str | None:
        content = field(field(response, "message"), "content")
        return content if isinstance(content, str) else None


class Generate(OllamaEndpoint):
    operation = semconv.OP_TEXT_COMPLETION

    def input_content(self, kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
        prompt = kwargs.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return {}
        part = text_part(prompt, self.settings.content_max_chars)
        return {semconv.INPUT_MESSAGES: to_json([{"role": "user", "parts": [part]}])}

    def text_of(self, response: Any) -> str | None:
        text = field(response, "response")
        return text if isinstance(text, str) else None


class Embed(OllamaEndpoint):
    operation = semconv.OP_EMBEDDINGS
    embeddings = True

    def record_response(self, invocation: Invocation, response: Any) -> None:
        vectors = field(response, "embeddings") or ()
        vector = vectors[0] if vectors else field(response, "embedding")  # legacy ``embeddings``: one vector
        attributes: dict[str, AttributeValue] = {}
        if isinstance(vector, list) and vector:
            attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = len(vector)
        invocation.answered(
            model=field(response, "model"), usage=ollama_usage(response, embeddings=True), attributes=attributes
        )


class OllamaStreamReader:
    """Chunks are whole responses; the last (``done``) one has the counts and the reason."""

    __slots__ = ("endpoint", "last", "texts")

    def __init__(self, endpoint: OllamaEndpoint) -> None:
        self.endpoint = endpoint
        self.last: Any = None
        self.texts: list[str] = []

    def on_item(self, item: Any) -> None:
        if field(item, "done"):
            self.last = item
        if self.endpoint.settings.capture_content:
            text = self.endpoint.text_of(item)
            if text:
                self.texts.append(text)

    def hides(self, item: Any) -> bool:
        return False

    def finish(self, invocation: Invocation) -> None:
        settings = self.endpoint.settings
        reason = field(self.last, "done_reason")
        invocation.answered(
            model=field(self.last, "model"),
            finish_reasons=[reason] if isinstance(reason, str) and reason else None,
            usage=ollama_usage(self.last) if self.last is not None else None,
            attributes=assistant_output("".join(self.texts), settings.content_max_chars)
            if settings.capture_content
            else None,
        )


def rebind_module_functions(module: Any) -> None:
    """Bind ``ollama.chat`` (and the rest) again to the default client, so they see the class's methods as
    they are now (wrapped, or unwrapped)."""
    for name in MODULE_FUNCTIONS:
        bound = getattr(module, name, None)
        client = getattr(bound, "__self__", None)
        if client is not None and type(client).__name__ == "Client":
            setattr(module, name, getattr(client, name))


TARGETS: tuple[Target, ...] = (
    Target("ollama._client", "Client.chat", Chat, False),
    Target("ollama._client", "AsyncClient.chat", Chat, True),
    Target("ollama._client", "Client.generate", Generate, False),
    Target("ollama._client", "AsyncClient.generate", Generate, True),
    Target("ollama._client", "Client.embed", Embed, False),
    Target("ollama._client", "AsyncClient.embed", Embed, True),
    Target("ollama._client", "Client.embeddings", Embed, False),
    Target("ollama._client", "AsyncClient.embeddings", Embed, True),
)
