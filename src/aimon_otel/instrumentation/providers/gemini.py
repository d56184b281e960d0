"""google-genai (Gemini API and Vertex AI) read into invocations.

One span per API call: the SDK's public ``generate_content`` may make several (automatic function
calling, continuations), each billed on its own, so the private methods that make exactly one
request are wrapped (``_generate_content``, ``_generate_content_stream``), plus the public
``embed_content`` and ``count_tokens``, which make one each. Chats call ``generate_content`` and
are covered by it.

Usage (``usage_metadata``) in the conventions' terms: input is the prompt (cached content
included) plus tool-use prompt tokens; output is the candidates plus thoughts (reasoning).
Streams report their usage in full only in the last chunk, so the last usage seen wins.
"""

from __future__ import annotations

import types as python_types
from typing import Any

from opentelemetry.util.types import AttributeValue

from aimon_otel import semconv
from aimon_otel.instrumentation.content import cut, field, text_part, to_json
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.providers.base import Endpoint, Plan, Target
from aimon_otel.instrumentation.providers.detect import detect_server
from aimon_otel.instrumentation.providers.request import stop_sequences
from aimon_otel.instrumentation.usage import CountReader, Usage

GEMINI = "gcp.gemini"
VERTEX = "gcp.vertex_ai"
_CONFIG_NUMBERS = (
    ("max_output_tokens", semconv.REQUEST_MAX_TOKENS),
    ("temperature", semconv.REQUEST_TEMPERATURE),
    ("top_p", semconv.REQUEST_TOP_P),
    ("top_k", semconv.REQUEST_TOP_K),
    ("seed", semconv.REQUEST_SEED),
    ("candidate_count", semconv.REQUEST_CHOICE_COUNT),
    ("frequency_penalty", semconv.REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", semconv.REQUEST_PRESENCE_PENALTY),
)


def model_name(value: Any) -> str | None:
    """The bare model id of every form the SDK takes or answers with: ``models/x``,
    ``publishers/google/models/x``, ``projects/p/locations/l/publishers/google/models/x``, ``google/x``."""
    if not isinstance(value, str) or not value:
        return None
    if "models/" in value and not value.startswith("tunedModels/"):
        return value.rsplit("models/", 1)[-1]
    if "/" in value and not value.startswith(("tunedModels/", "projects/")):
        return value.rsplit("/", 1)[-1]
    return value


def error_type(exc: BaseException) -> str:
    """The API's status (``RESOURCE_EXHAUSTED``, ``UNAUTHENTICATED``...) for google-genai's ``APIError``:
    its class (``ClientError``) says only 4xx; other exceptions by their class name."""
    status = getattr(exc, "status", None)
    if isinstance(status, str) and status.isupper() and "APIError" in {c.__name__ for c in type(exc).__mro__}:
        return status
    return type(exc).__qualname__


_MODALITY_UNITS: dict[str, dict[str, str]] = {
    # usage_metadata field -> the API's modality -> genai-prices' unit (text and documents are what is left)
    "prompt_tokens_details": {
        "AUDIO": "input_audio_tokens",
        "IMAGE": "input_image_tokens",
        "VIDEO": "input_video_tokens",
    },
    "tool_use_prompt_tokens_details": {
        "AUDIO": "input_audio_tokens",
        "IMAGE": "input_image_tokens",
        "VIDEO": "input_video_tokens",
    },
    "cache_tokens_details": {
        "AUDIO": "cache_audio_read_tokens",
        "IMAGE": "cache_image_read_tokens",
        "VIDEO": "cache_video_read_tokens",
    },
    "candidates_tokens_details": {
        "AUDIO": "output_audio_tokens",
        "IMAGE": "output_image_tokens",
        "VIDEO": "output_video_tokens",
    },
}
"""Gemini reports each count by modality; audio, image and video are priced apart where the model has a price."""
_ALL_MODALITY_UNITS = tuple(dict.fromkeys(unit for units in _MODALITY_UNITS.values() for unit in units.values()))


def gemini_usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    read = CountReader()
    prompt = read.count(field(usage, "prompt_token_count"), "prompt_token_count", required=True)
    tool_use = read.count(field(usage, "tool_use_prompt_token_count"), "tool_use_prompt_token_count")
    candidates = read.count(field(usage, "candidates_token_count"), "candidates_token_count")
    thoughts = read.count(field(usage, "thoughts_token_count"), "thoughts_token_count")
    cached = read.count(field(usage, "cached_content_token_count"), "cached_content_token_count")
    return Usage(
        input_tokens=None if prompt is None else prompt + (tool_use or 0),
        # a call that produced nothing (blocked by safety filters) reports no candidates: 0, not unknown
        output_tokens=(candidates or 0) + (thoughts or 0),
        cache_read_input_tokens=cached,
        reasoning_output_tokens=thoughts,
        modality_tokens=_modality_tokens(usage, read),
        problems=read.result(),
    )


def _modality_tokens(usage: Any, read: CountReader) -> tuple[tuple[str, int], ...]:
    """Non-text tokens by genai-prices unit, summed over the details lists that report them.

    Every unit is listed, 0 where no detail names its modality: the API breaks each count down in
    full, so a modality it leaves out has none (and a count with no breakdown at all is text, as
    before the API had one). A missing unit would make genai-prices' lattice ambiguous."""
    found = dict.fromkeys(_ALL_MODALITY_UNITS, 0)
    for details_field, units in _MODALITY_UNITS.items():
        for entry in field(usage, details_field) or ():
            modality = field(entry, "modality")
            unit = units.get(str(getattr(modality, "value", modality)).upper())
            if unit is not None:
                found[unit] += read.count(field(entry, "token_count"), f"{details_field}.token_count") or 0
    return tuple(found.items())


def embedding_usage(response: Any) -> Usage | None:
    """Vertex reports tokens (``usage_metadata`` or each embedding's ``statistics``); the Gemini API none."""
    usage = field(response, "usage_metadata")
    if usage is not None:
        read = CountReader()
        tokens = read.count(field(usage, "prompt_token_count"), "prompt_token_count", required=True)
        return Usage(input_tokens=tokens, output_tokens=0, problems=read.result())
    counts = [field(field(e, "statistics"), "token_count") for e in field(response, "embeddings") or ()]
    if not counts or any(c is None for c in counts):
        return None
    read = CountReader()
    total = 0
    for count in counts:
        total += read.count(count, "token_count") or 0
    return Usage(input_tokens=total, output_tokens=0, problems=read.result())


def finish_reasons(response: Any) -> list[str]:
    reasons = []
    for candidate in field(response, "candidates") or ():
        reason = field(candidate, "finish_reason")
        if reason is not None:
            reasons.append(str(getattr(reason, "value", reason)).lower())
    return reasons


class GeminiEndpoint(Endpoint):
    """What every google-genai ``Models`` method shares: the client, Gemini API or Vertex, the config."""

    operation = semconv.OP_CHAT
    streaming = False
    billable = True

    def plan(self, instance: Any, kwargs: dict[str, Any]) -> Plan:
        api_client = instance._api_client
        vertex = bool(getattr(api_client, "vertexai", False))
        http_options = getattr(api_client, "_http_options", None)
        base_url = field(http_options, "base_url") or ""
        server = detect_server(str(base_url), VERTEX if vertex else GEMINI)
        config = kwargs.get("config")
        attributes: dict[str, AttributeValue] = {}
        if self.operation == semconv.OP_CHAT:
            attributes[semconv.REQUEST_STREAM] = self.streaming
            for key, name in _CONFIG_NUMBERS:
                value = field(config, key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    attributes[name] = value
            stops = stop_sequences(field(config, "stop_sequences"))
            if stops:
                attributes[semconv.REQUEST_STOP_SEQUENCES] = stops
            if self.settings.capture_content:
                attributes.update(_input_content(kwargs.get("contents"), config, self.settings.content_max_chars))
        api_key = getattr(api_client, "api_key", None)
        return Plan(
            Invocation(
                operation=self.operation,
                provider=VERTEX if vertex else GEMINI,
                request_model=model_name(kwargs.get("model")),
                server_address=server.address,
                server_port=server.port,
                stream=self.streaming,
                request_attributes=attributes,
                billable=self.billable,
                secrets=(api_key,) if isinstance(api_key, str) and api_key else (),
                error_type_of=error_type,
                joins_enclosing_span=True,  # the official google-genai instrumentation's span, if on
            ),
            kwargs,
        )

    def is_stream(self, result: Any) -> bool:
        return isinstance(result, (python_types.GeneratorType, python_types.AsyncGeneratorType))

    def is_raw_response(self, result: Any) -> bool:
        return False

    def record_response(self, invocation: Invocation, response: Any) -> None:
        attributes: dict[str, AttributeValue] = {}
        if self.settings.capture_content:
            attributes.update(_output_content(_texts(response), self.settings.content_max_chars))
        invocation.answered(
            model=model_name(field(response, "model_version")),
            response_id=field(response, "response_id"),
            finish_reasons=finish_reasons(response),
            usage=gemini_usage(field(response, "usage_metadata")),
            attributes=attributes,
        )

    def stream_reader(self, invocation: Invocation, plan: Plan) -> GeminiStreamReader:
        return GeminiStreamReader(self.settings.capture_content, self.settings.content_max_chars)


class GenerateContent(GeminiEndpoint):
    pass


class GenerateContentStream(GeminiEndpoint):
    streaming = True


class EmbedContent(GeminiEndpoint):
    operation = semconv.OP_EMBEDDINGS

    def record_response(self, invocation: Invocation, response: Any) -> None:
        attributes: dict[str, AttributeValue] = {}
        embeddings = field(response, "embeddings") or ()
        if embeddings:
            values = field(embeddings[0], "values")
            if isinstance(values, list):
                attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = len(values)
        invocation.answered(usage=embedding_usage(response), attributes=attributes)


class CountTokens(GeminiEndpoint):
    """``count_tokens``: a span and a duration, no cost (counting is free)."""

    operation = semconv.OP_COUNT_TOKENS
    billable = False

    def record_response(self, invocation: Invocation, response: Any) -> None:
        pass


class GeminiStreamReader:
    """Chunks are whole ``GenerateContentResponse`` objects; the last usage seen is the call's."""

    __slots__ = ("capture", "max_chars", "model", "reasons", "response_id", "texts", "usage")

    def __init__(self, capture: bool, max_chars: int) -> None:
        self.capture = capture
        self.max_chars = max_chars
        self.usage: Any = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.reasons: list[str] = []
        self.texts: list[str] = []

    def on_item(self, item: Any) -> None:
        usage = field(item, "usage_metadata")
        if usage is not None:
            self.usage = usage
        self.model = self.model or model_name(field(item, "model_version"))
        self.response_id = self.response_id or field(item, "response_id")
        self.reasons.extend(finish_reasons(item))
        if self.capture:
            self.texts.extend(_texts(item))

    def hides(self, item: Any) -> bool:
        return False

    def finish(self, invocation: Invocation) -> None:
        attributes = _output_content(self.texts, self.max_chars) if self.capture else {}
        invocation.answered(
            model=self.model,
            response_id=self.response_id,
            finish_reasons=self.reasons,
            usage=gemini_usage(self.usage),
            attributes=attributes,
        )


def _texts(response: Any) -> list[str]:
    candidates = field(response, "candidates") or ()
    parts = field(field(candidates[0], "content"), "parts") if candidates else None
    return [text for part in parts or () if isinstance(text := field(part, "text"), str)]


def _output_content(texts: list[str], max_chars: int) -> dict[str, AttributeValue]:
    """The answer's text as ``gen_ai.output.messages`` (one assistant message), or nothing."""
    if not texts:
        return {}
    return {semconv.OUTPUT_MESSAGES: to_json([{"role": "assistant", "parts": [text_part("".join(texts), max_chars)]}])}


def _input_content(contents: Any, config: Any, max_chars: int) -> dict[str, AttributeValue]:
    """Text of the contents in the conventions' message shape (a string, a list, Content objects or dicts)."""
    found: dict[str, AttributeValue] = {}
    system = field(config, "system_instruction")
    system_texts = _content_texts(system)
    if system_texts:
        found[semconv.SYSTEM_INSTRUCTIONS] = to_json([text_part("".join(system_texts), max_chars)])
    items = contents if isinstance(contents, (list, tuple)) else [contents]
    messages = []
    for item in items:
        texts = _content_texts(item)
        if texts:
            role = field(item, "role") if not isinstance(item, str) else None
            messages.append(
                {
                    "role": "assistant" if role == "model" else "user",
                    "parts": [{"type": "text", "content": cut(t, max_chars)} for t in texts],
                }
            )
    if messages:
        found[semconv.INPUT_MESSAGES] = to_json(messages)
    return found


def _content_texts(item: Any) -> list[str]:
    if item is None:
        return []
    if isinstance(item, str):
        return [item]
    text = field(item, "text")
    if isinstance(text, str):
        return [text]
    parts = field(item, "parts")
    return [t for part in parts or () if isinstance(t := field(part, "text"), str)]


TARGETS: tuple[Target, ...] = (
    Target("google.genai.models", "Models._generate_content", GenerateContent, False),
    Target("google.genai.models", "AsyncModels._generate_content", GenerateContent, True),
    Target("google.genai.models", "Models._generate_content_stream", GenerateContentStream, False),
    Target("google.genai.models", "AsyncModels._generate_content_stream", GenerateContentStream, True),
    Target("google.genai.models", "Models.embed_content", EmbedContent, False),
    Target("google.genai.models", "AsyncModels.embed_content", EmbedContent, True),
    Target("google.genai.models", "Models.count_tokens", CountTokens, False),
    Target("google.genai.models", "AsyncModels.count_tokens", CountTokens, True),
)
