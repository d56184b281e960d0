"""Amazon Bedrock Runtime through boto3/botocore: Converse, ConverseStream, InvokeModel and its stream.

Only ``bedrock-runtime`` clients are touched: ``ClientCreator.create_client`` is wrapped (once per
client made, never per AWS call), and a Bedrock client's own generated class gets the four
operations wrapped. An S3 or DynamoDB call goes through botocore exactly as without us.

Usage, in the conventions' terms (input includes cached input):

- Converse and the ConverseStream ``metadata`` event: ``usage`` (input, output, cache read, cache write).
- InvokeModel bodies by model family (Anthropic messages, Meta Llama, Amazon Nova and Titan, AI21
  and other OpenAI-shaped bodies); a family whose body carries no counts (Cohere, Mistral) falls back to
  the ``x-amzn-bedrock-input-token-count`` / ``-output-token-count`` response headers, and a stream's
  to the last chunk's ``amazon-bedrock-invocationMetrics``.

The app gets the same response dict. InvokeModel's ``body`` is read by us and replaced by a new
``StreamingBody`` over the same bytes, so the app reads it as it would have; a stream's ``body``
(``stream`` for ConverseStream) is replaced by a proxy that yields the same events and ends the
call's span once.
"""

from __future__ import annotations

import io
import json
from typing import Any

from opentelemetry.util.types import AttributeValue

from aimon_otel import semconv
from aimon_otel.faults import report_fault
from aimon_otel.instrumentation.content import assistant_output, field, text_part, to_json
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.providers.anthropic import messages_usage
from aimon_otel.instrumentation.providers.base import Endpoint, Plan, StreamReader
from aimon_otel.instrumentation.providers.detect import detect_server
from aimon_otel.instrumentation.providers.request import stop_sequences
from aimon_otel.instrumentation.usage import CountReader, Usage

PROVIDER = "aws.bedrock"
SERVICE = "bedrock-runtime"
GEO_PREFIXES = ("us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.", "ap.")
"""Cross-region inference profiles: a geography before the base model id."""
GUARDRAIL_INTERVENED = "guardrail_intervened"
INPUT_HEADER = "x-amzn-bedrock-input-token-count"
OUTPUT_HEADER = "x-amzn-bedrock-output-token-count"
METRICS_KEY = "amazon-bedrock-invocationMetrics"


def base_model(model_id: str) -> str:
    """The base model id of every form Bedrock takes: a base id, a cross-region profile (``us.``...), or an
    ARN (foundation model, inference profile; a provisioned or imported model's ARN names no model)."""
    name = model_id.rsplit("/", 1)[-1] if model_id.startswith("arn:") else model_id
    for prefix in GEO_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def family(model_id: str | None) -> str:
    """Which body format an InvokeModel call uses: ``anthropic``, ``meta``, ``nova``, ``titan-text``,
    ``titan-embed``, ``cohere``, ``cohere-embed``, ``mistral``, ``openai-shaped`` (AI21 Jamba, OpenAI,
    DeepSeek, Qwen...), or ``unknown``."""
    if not model_id:
        return "unknown"
    base = base_model(model_id)
    vendor = base.split(".", 1)[0]
    if vendor == "anthropic":
        return "anthropic"
    if vendor == "meta":
        return "meta"
    if vendor == "amazon":
        if base.startswith("amazon.nova"):
            return "nova"
        if base.startswith("amazon.titan-embed"):
            return "titan-embed"
        if base.startswith("amazon.titan-text"):
            return "titan-text"
        return "unknown"
    if vendor == "cohere":
        return "cohere-embed" if base.startswith("cohere.embed") else "cohere"
    if vendor == "mistral":
        return "mistral"
    if vendor in ("ai21", "openai", "deepseek", "qwen"):
        return "openai-shaped"
    return "unknown"


def error_type(exc: BaseException) -> str:
    """The API's error code (``ThrottlingException``, ``ValidationException``...) for botocore's
    ``ClientError``; other exceptions by their class name."""
    response = getattr(exc, "response", None)
    code = field(field(response, "Error"), "Code") if isinstance(response, dict) else None
    if isinstance(code, str) and code:
        return code
    return type(exc).__qualname__


# -- usage ----------------------------------------------------------------------------------------


def converse_usage(usage: Any) -> Usage | None:
    """Converse ``usage``: ``inputTokens`` leaves out cached input (``totalTokens`` adds it back);
    ``cacheDetails`` splits the cache writes by TTL (5 minutes, 1 hour: priced apart)."""
    if not isinstance(usage, dict):
        return None
    read = CountReader()
    uncached = read.count(usage.get("inputTokens"), "inputTokens", required=True)
    output = read.count(usage.get("outputTokens"), "outputTokens", required=True)
    cache_read = read.count(usage.get("cacheReadInputTokens"), "cacheReadInputTokens")
    cache_write = read.count(usage.get("cacheWriteInputTokens"), "cacheWriteInputTokens")
    by_ttl = {"5m": 0, "1h": 0}
    details = usage.get("cacheDetails")
    for detail in details if isinstance(details, list) else ():
        ttl = field(detail, "ttl")
        if ttl in by_ttl:
            by_ttl[ttl] += read.count(field(detail, "inputTokens"), "cacheDetails.inputTokens") or 0
    split = isinstance(details, list) and sum(by_ttl.values()) == (cache_write or 0)
    return Usage(
        input_tokens=None if uncached is None else uncached + (cache_read or 0) + (cache_write or 0),
        output_tokens=output,
        cache_read_input_tokens=cache_read,
        cache_creation_input_tokens=cache_write,
        cache_creation_5m_input_tokens=by_ttl["5m"] if split else None,
        cache_creation_1h_input_tokens=by_ttl["1h"] if split else None,
        problems=read.result(),
    )


def _nova_usage(usage: Any) -> Usage | None:
    """Nova's InvokeModel ``usage`` names its cache counts ``cache*InputTokenCount``."""
    if not isinstance(usage, dict):
        return None
    return converse_usage(
        {
            "inputTokens": usage.get("inputTokens"),
            "outputTokens": usage.get("outputTokens"),
            "cacheReadInputTokens": usage.get("cacheReadInputTokenCount", usage.get("cacheReadInputTokens")),
            "cacheWriteInputTokens": usage.get("cacheWriteInputTokenCount", usage.get("cacheWriteInputTokens")),
        }
    )


def _counts(input_tokens: Any, output_tokens: Any, input_name: str, output_name: str) -> Usage:
    read = CountReader()
    return Usage(
        input_tokens=read.count(input_tokens, input_name, required=True),
        output_tokens=read.count(output_tokens, output_name, required=True),
        problems=read.result(),
    )


def body_usage(kind: str, body: Any) -> Usage | None:
    """Usage from an InvokeModel response body of this family; None when the body carries no counts."""
    if not isinstance(body, dict):
        return None
    if kind == "anthropic":
        return messages_usage(body.get("usage"))
    if kind == "nova":
        return _nova_usage(body.get("usage"))
    if kind == "meta" and "prompt_token_count" in body:
        return _counts(
            body.get("prompt_token_count"),
            body.get("generation_token_count"),
            "prompt_token_count",
            "generation_token_count",
        )
    if kind == "titan-text" and "inputTextTokenCount" in body:
        results = body.get("results")
        output = (
            sum(r.get("tokenCount") or 0 for r in results if isinstance(r, dict)) if isinstance(results, list) else None
        )
        return _counts(body.get("inputTextTokenCount"), output, "inputTextTokenCount", "results.tokenCount")
    if kind == "titan-embed" and "inputTextTokenCount" in body:
        return _counts(body.get("inputTextTokenCount"), 0, "inputTextTokenCount", "output")
    usage = body.get("usage")
    if isinstance(usage, dict) and "prompt_tokens" in usage:  # AI21 Jamba, OpenAI, Mistral's chat bodies
        return _counts(usage.get("prompt_tokens"), usage.get("completion_tokens"), "prompt_tokens", "completion_tokens")
    return None


def header_usage(headers: Any, embeddings: bool = False) -> Usage | None:
    """The token counts Bedrock sends in the InvokeModel response headers, for every model."""
    if not isinstance(headers, dict) or INPUT_HEADER not in headers:
        return None
    output = headers.get(OUTPUT_HEADER, "0" if embeddings else None)
    return _counts(_int(headers.get(INPUT_HEADER)), _int(output), INPUT_HEADER, OUTPUT_HEADER)


def metrics_usage(metrics: Any) -> Usage | None:
    """A stream's last chunk: ``amazon-bedrock-invocationMetrics`` (input, output, and cache counts when sent)."""
    if not isinstance(metrics, dict):
        return None
    return converse_usage(
        {
            "inputTokens": metrics.get("inputTokenCount"),
            "outputTokens": metrics.get("outputTokenCount"),
            "cacheReadInputTokens": metrics.get("cacheReadInputTokenCount"),
            "cacheWriteInputTokens": metrics.get("cacheWriteInputTokenCount"),
        }
    )


def _int(value: Any) -> Any:
    """A header's count as an int (headers are text); anything else as it is, for the reader to flag."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def finish_reasons_of(kind: str, body: Any) -> list[str]:
    if not isinstance(body, dict):
        return []
    reason: Any = None
    if kind == "anthropic":
        reason = body.get("stop_reason")
    elif kind == "nova":
        reason = body.get("stopReason")
    elif kind == "meta":
        reason = body.get("stop_reason")
    elif kind == "titan-text":
        results = body.get("results")
        reason = field(results[0], "completionReason") if isinstance(results, list) and results else None
    elif kind == "cohere":
        reason = body.get("finish_reason")
    else:
        for key in ("choices", "outputs"):
            entries = body.get(key)
            if isinstance(entries, list) and entries:
                reason = field(entries[0], "finish_reason") or field(entries[0], "stop_reason")
    return [str(reason).lower()] if isinstance(reason, str) and reason else []


def _guardrail(invocation: Invocation, intervened: bool) -> None:
    """A guardrail that intervened answered in place of the model: a failed call (its tokens still count)."""
    if intervened:
        invocation.failed(GUARDRAIL_INTERVENED, "a Bedrock guardrail intervened")


# -- requests -------------------------------------------------------------------------------------

_CONVERSE_NUMBERS = (
    ("maxTokens", semconv.REQUEST_MAX_TOKENS),
    ("temperature", semconv.REQUEST_TEMPERATURE),
    ("topP", semconv.REQUEST_TOP_P),
)
_BODY_NUMBERS = (
    ("max_tokens", semconv.REQUEST_MAX_TOKENS),
    ("max_gen_len", semconv.REQUEST_MAX_TOKENS),
    ("maxTokenCount", semconv.REQUEST_MAX_TOKENS),
    ("maxTokens", semconv.REQUEST_MAX_TOKENS),
    ("temperature", semconv.REQUEST_TEMPERATURE),
    ("top_p", semconv.REQUEST_TOP_P),
    ("topP", semconv.REQUEST_TOP_P),
    ("top_k", semconv.REQUEST_TOP_K),
)


def _numbers(source: Any, names: tuple[tuple[str, str], ...]) -> dict[str, AttributeValue]:
    found: dict[str, AttributeValue] = {}
    if not isinstance(source, dict):
        return found
    for key, name in names:
        value = source.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and name not in found:
            found[name] = value
    return found


def _request_body(body: Any) -> dict[str, Any] | None:
    """An InvokeModel request body as JSON, when it is bytes or text (a file is left unread)."""
    if isinstance(body, (bytes, bytearray)):
        text = bytes(body).decode("utf-8", "replace")
    elif isinstance(body, str):
        text = body
    else:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _converse_texts(blocks: Any) -> list[str]:
    """Text of content blocks: a list of ``{"text": ...}`` (Converse, Nova, Anthropic), or a plain string."""
    if isinstance(blocks, str):
        return [blocks]
    return (
        [t for block in blocks or () if isinstance(t := field(block, "text"), str)] if isinstance(blocks, list) else []
    )


def _body_input(body: dict[str, Any], max_chars: int) -> dict[str, AttributeValue]:
    """An InvokeModel body's prompt, whatever the family: its ``messages`` (and ``system``), else its single
    prompt field (Llama, Mistral ``prompt``; Titan ``inputText``; Cohere ``message``)."""
    if isinstance(body.get("messages"), list):
        return _converse_input(body, max_chars)
    for key in ("prompt", "inputText", "message"):
        text = body.get(key)
        if isinstance(text, str) and text:
            return {semconv.INPUT_MESSAGES: to_json([{"role": "user", "parts": [text_part(text, max_chars)]}])}
    return {}


def _body_output(kind: str, body: Any) -> list[str]:
    """An InvokeModel answer's text by family."""
    if not isinstance(body, dict):
        return []
    if kind == "anthropic":
        return _converse_texts(body.get("content"))
    if kind == "nova":
        return _converse_texts(field(field(body.get("output"), "message"), "content"))
    if kind == "meta":
        text = body.get("generation")
        return [text] if isinstance(text, str) else []
    if kind == "titan-text":
        results = body.get("results")
        return (
            [t for r in results or () if isinstance(t := field(r, "outputText"), str)]
            if isinstance(results, list)
            else []
        )
    if kind == "cohere":
        text = body.get("text")
        return [text] if isinstance(text, str) else []
    for key in ("choices", "outputs"):
        entries = body.get(key)
        if isinstance(entries, list) and entries:
            text = field(field(entries[0], "message"), "content") or field(entries[0], "text")
            return [text] if isinstance(text, str) else []
    return []


def _converse_input(kwargs: dict[str, Any], max_chars: int) -> dict[str, AttributeValue]:
    found: dict[str, AttributeValue] = {}
    system = _converse_texts(kwargs.get("system"))
    if system:
        found[semconv.SYSTEM_INSTRUCTIONS] = to_json([text_part("".join(system), max_chars)])
    messages = []
    for message in kwargs.get("messages") or ():
        texts = _converse_texts(field(message, "content"))
        if texts:
            role = field(message, "role")
            messages.append(
                {
                    "role": role if role in ("user", "assistant") else "user",
                    "parts": [text_part(t, max_chars) for t in texts],
                }
            )
    if messages:
        found[semconv.INPUT_MESSAGES] = to_json(messages)
    return found


class BedrockEndpoint(Endpoint):
    """One Bedrock Runtime operation of a botocore client."""

    operation = semconv.OP_CHAT
    streaming = False
    converse = True

    def plan(self, instance: Any, kwargs: dict[str, Any]) -> Plan:
        meta = instance.meta
        server = detect_server(str(meta.endpoint_url or ""), PROVIDER)
        model = kwargs.get("modelId")
        model = model if isinstance(model, str) and model else None
        attributes: dict[str, AttributeValue] = {}
        operation = self.operation
        if self.converse:
            config = kwargs.get("inferenceConfig")
            attributes.update(_numbers(config, _CONVERSE_NUMBERS))
            stops = stop_sequences(field(config, "stopSequences"))
            if stops:
                attributes[semconv.REQUEST_STOP_SEQUENCES] = stops
            if self.settings.capture_content:
                attributes.update(_converse_input(kwargs, self.settings.content_max_chars))
        else:
            body = _request_body(kwargs.get("body"))
            if body is not None:
                attributes.update(_numbers(body, _BODY_NUMBERS))
                attributes.update(_numbers(body.get("inferenceConfig"), _CONVERSE_NUMBERS))
                attributes.update(_numbers(body.get("textGenerationConfig"), _BODY_NUMBERS))
                if self.settings.capture_content:
                    attributes.update(_body_input(body, self.settings.content_max_chars))
            if family(model) in ("titan-embed", "cohere-embed"):
                operation = semconv.OP_EMBEDDINGS
        if operation == semconv.OP_CHAT:
            attributes[semconv.REQUEST_STREAM] = self.streaming
        return Plan(
            Invocation(
                operation=operation,
                provider=PROVIDER,
                request_model=model,
                server_address=server.address,
                server_port=server.port,
                stream=self.streaming,
                request_attributes=attributes,
                error_type_of=error_type,
            ),
            kwargs,
        )

    def is_raw_response(self, result: Any) -> bool:
        return False


class Converse(BedrockEndpoint):
    def is_stream(self, result: Any) -> bool:
        return False

    def record_response(self, invocation: Invocation, response: Any) -> None:
        message = field(field(response, "output"), "message")
        texts = _converse_texts(field(message, "content"))
        reason = field(response, "stopReason")
        invocation.answered(
            finish_reasons=[reason] if isinstance(reason, str) else None,
            usage=converse_usage(field(response, "usage")),
            attributes=assistant_output("".join(texts), self.settings.content_max_chars)
            if self.settings.capture_content
            else None,
        )
        _guardrail(invocation, reason == GUARDRAIL_INTERVENED)


class ConverseStream(BedrockEndpoint):
    streaming = True
    stream_key = "stream"
    iterable_stream = True

    def is_stream(self, result: Any) -> bool:
        return isinstance(result, dict) and result.get(self.stream_key) is not None

    def stream_of(self, result: Any) -> Any:
        return result[self.stream_key]

    def with_stream(self, result: Any, proxy: Any) -> Any:
        result[self.stream_key] = proxy
        return result

    def stream_reader(self, invocation: Invocation, plan: Plan) -> StreamReader:
        return ConverseStreamReader(self.settings.capture_content, self.settings.content_max_chars)


class InvokeModel(BedrockEndpoint):
    converse = False

    def is_stream(self, result: Any) -> bool:
        return False

    def take_body(self, response: dict[str, Any]) -> bytes | None:
        """The response body's bytes; the app gets a body of the SDK's class that reads the same."""
        raw = response.get("body")
        if raw is None or not hasattr(raw, "read"):
            return None
        data: bytes = raw.read()
        response["body"] = _same_body(raw, data)
        return data

    def record_response(self, invocation: Invocation, response: Any) -> None:
        if not isinstance(response, dict):
            return
        data = self.take_body(response)
        if data is None:
            return
        kind = family(invocation.request_model)
        try:
            body = json.loads(data) if data else None
        except ValueError:
            body = None
        headers = field(field(response, "ResponseMetadata"), "HTTPHeaders")
        usage = body_usage(kind, body)
        if usage is None:
            usage = header_usage(headers, embeddings=invocation.operation == semconv.OP_EMBEDDINGS)
        attributes: dict[str, AttributeValue] = {}
        if invocation.operation == semconv.OP_EMBEDDINGS and isinstance(body, dict):
            vector = body.get("embedding")
            if not isinstance(vector, list):
                vectors = body.get("embeddings")
                vector = vectors[0] if isinstance(vectors, list) and vectors else None
            if isinstance(vector, list):
                attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = len(vector)
        elif self.settings.capture_content:
            attributes.update(assistant_output("".join(_body_output(kind, body)), self.settings.content_max_chars))
        invocation.answered(
            model=body.get("model") if kind == "anthropic" and isinstance(body, dict) else None,
            response_id=body.get("id") if isinstance(body, dict) and isinstance(body.get("id"), str) else None,
            finish_reasons=finish_reasons_of(kind, body),
            usage=usage,
            attributes=attributes,
        )
        _guardrail(invocation, isinstance(body, dict) and body.get("amazon-bedrock-guardrailAction") == "INTERVENED")


class InvokeModelStream(ConverseStream):
    converse = False
    stream_key = "body"

    def stream_reader(self, invocation: Invocation, plan: Plan) -> StreamReader:
        return InvokeStreamReader(family(invocation.request_model))


def _same_body(raw: Any, data: bytes) -> Any:
    """A new ``StreamingBody`` over the bytes we read, of the SDK's own class."""
    return type(raw)(io.BytesIO(data), len(data))


# -- streams --------------------------------------------------------------------------------------


class ConverseStreamReader:
    """ConverseStream events: ``messageStop`` has the stop reason, ``metadata`` the usage."""

    __slots__ = ("capture", "max_chars", "reasons", "texts", "usage")

    def __init__(self, capture: bool, max_chars: int) -> None:
        self.capture = capture
        self.max_chars = max_chars
        self.usage: Any = None
        self.reasons: list[str] = []
        self.texts: list[str] = []

    def on_item(self, item: Any) -> None:
        if not isinstance(item, dict):
            return
        metadata = item.get("metadata")
        if metadata is not None:
            self.usage = field(metadata, "usage")
            return
        stop = item.get("messageStop")
        if stop is not None:
            reason = field(stop, "stopReason")
            if isinstance(reason, str):
                self.reasons.append(reason)
            return
        if self.capture:
            delta = field(item.get("contentBlockDelta"), "delta")
            text = field(delta, "text")
            if isinstance(text, str):
                self.texts.append(text)

    def hides(self, item: Any) -> bool:
        return False

    def finish(self, invocation: Invocation) -> None:
        invocation.answered(
            finish_reasons=self.reasons,
            usage=converse_usage(self.usage),
            attributes=assistant_output("".join(self.texts), self.max_chars) if self.capture else None,
        )
        _guardrail(invocation, GUARDRAIL_INTERVENED in self.reasons)


_STREAM_COUNTS = {
    "meta": ("prompt_token_count", "generation_token_count"),
    "titan-text": ("inputTextTokenCount", "totalOutputTextTokenCount"),
}


class InvokeStreamReader:
    """InvokeModelWithResponseStream ``chunk`` events: each one JSON document of the model's family.

    Anthropic's are its SSE events (``message_start`` usage, ``message_delta`` counts, the latest
    wins); other families carry their counts in their own fields; every stream's last chunk has
    ``amazon-bedrock-invocationMetrics``, used when the family's own counts are not there."""

    __slots__ = ("anthropic_usage", "family", "metrics", "model", "prompt_tokens", "reasons", "response_id", "usage")

    def __init__(self, kind: str) -> None:
        self.family = kind
        self.anthropic_usage: dict[str, Any] = {}
        self.metrics: Any = None
        self.prompt_tokens: Any = None
        self.usage: Usage | None = None
        self.reasons: list[str] = []
        self.model: str | None = None
        self.response_id: str | None = None

    def on_item(self, item: Any) -> None:
        data = field(item.get("chunk"), "bytes") if isinstance(item, dict) else None
        if not isinstance(data, (bytes, bytearray)):
            return
        event = json.loads(data)
        if not isinstance(event, dict):
            return
        metrics = event.get(METRICS_KEY)
        if metrics is not None:
            self.metrics = metrics
        kind = self.family
        if kind == "anthropic":
            self._anthropic(event)
        elif kind == "nova":
            usage = field(event.get("metadata"), "usage")
            if usage is not None:
                self.usage = _nova_usage(usage)
            reason = field(event.get("messageStop"), "stopReason")
            if isinstance(reason, str):
                self.reasons.append(reason)
        else:
            if kind in ("meta", "titan-text"):
                self._counted(event, *_STREAM_COUNTS[kind])
            elif isinstance(event.get("usage"), dict):
                self.usage = body_usage(kind, event) or self.usage
            reasons = finish_reasons_of(kind, event)
            if not reasons and kind == "titan-text":
                reason = event.get("completionReason")
                reasons = [reason.lower()] if isinstance(reason, str) else []
            self.reasons.extend(reasons)

    def _counted(self, event: dict[str, Any], input_name: str, output_name: str) -> None:
        """Llama and Titan: the input count in the first chunk (or every one), the output count so far in each."""
        prompt = event.get(input_name)
        if prompt is not None:
            self.prompt_tokens = prompt
        output = event.get(output_name)
        if output is not None and self.prompt_tokens is not None:
            self.usage = _counts(self.prompt_tokens, output, input_name, output_name)

    def _anthropic(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.model = field(message, "model")
            self.response_id = field(message, "id")
            usage = field(message, "usage")
            if isinstance(usage, dict):
                self.anthropic_usage.update(usage)
        elif kind == "message_delta":
            usage = event.get("usage")
            if isinstance(usage, dict):
                self.anthropic_usage.update({k: v for k, v in usage.items() if v is not None})
            reason = field(event.get("delta"), "stop_reason")
            if isinstance(reason, str):
                self.reasons.append(reason)

    def hides(self, item: Any) -> bool:
        return False

    def finish(self, invocation: Invocation) -> None:
        usage = self.usage
        if self.family == "anthropic" and self.anthropic_usage:
            usage = messages_usage(self.anthropic_usage)
        if usage is None:
            usage = metrics_usage(self.metrics)
        invocation.answered(model=self.model, response_id=self.response_id, finish_reasons=self.reasons, usage=usage)


# -- wrapping the clients -------------------------------------------------------------------------

OPERATIONS: dict[str, type[BedrockEndpoint]] = {
    "converse": Converse,
    "converse_stream": ConverseStream,
    "invoke_model": InvokeModel,
    "invoke_model_with_response_stream": InvokeModelStream,
}


def is_bedrock_runtime(client: Any) -> bool:
    try:
        return bool(client.meta.service_model.service_name == SERVICE)
    except Exception as fault:  # a client of another shape: not ours to read
        report_fault("bedrock client", fault)
        return False
