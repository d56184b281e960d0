"""The OpenAI HTTP API as the fake provider answers it: JSON bodies and SSE streams.

Pure functions from a request to a :class:`WireResponse`, so the same answers serve the
loopback HTTP server (tests, demo) and an in-process transport (benchmarks).
Usage figures are fixed and exported, so tests can hand-compute what they expect.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

REPLY_TEXT = "Hello from the fake provider."
PROMPT_TOKENS = 120
CACHED_TOKENS = 40
COMPLETION_TOKENS = 30
REASONING_TOKENS = 10
EMBEDDING_TOKENS = 8
EMBEDDING_DIMENSIONS = 4
CREATED = 1_767_225_600  # 2026-01-01T00:00:00Z

# Model aliases answered with a dated snapshot, as the real API does.
SNAPSHOTS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
}

SCENARIO_HEADER = "x-fake-scenario"
CHUNKS_HEADER = "x-fake-chunks"
CALL_ID_HEADER = "x-fake-call-id"
COST_HEADER = "x-fake-usage-cost"
"""Report this cost (USD) in ``usage.cost``, as OpenRouter does."""


@dataclass(frozen=True)
class Options:
    chunks: int | None
    scenario: str
    cost: float | None
    flavor: str = ""
    """``groq`` (``/openai/v1``: usage with timings, in a stream's last chunk under ``x_groq``), ``mistral``
    (``/mistral/v1``, as the tests point the SDK: plain usage, in every stream's last chunk), or OpenAI's."""

    @property
    def groq(self) -> bool:
        return self.flavor == "groq"


@dataclass
class WireResponse:
    status: int
    body: bytes | None = None
    events: Iterator[bytes] | None = None
    """SSE byte frames for a streamed answer (``body`` is then None)."""
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str | None = None
    """The content type when it is not JSON or SSE (Bedrock's event stream)."""

    @property
    def content_type(self) -> str:
        if self.media_type is not None:
            return self.media_type
        return "text/event-stream" if self.events is not None else "application/json"


def json_response(status: int, payload: Mapping[str, Any], headers: dict[str, str] | None = None) -> WireResponse:
    return WireResponse(status, json.dumps(payload).encode(), headers=headers or {})


def error_response(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> WireResponse:
    return json_response(status, {"error": {"message": message, "type": kind, "param": None, "code": None}}, headers)


def sse(data: Mapping[str, Any] | str, event: str | None = None) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {text}\n\n".encode()


def response_model(model: str) -> str:
    return SNAPSHOTS.get(model, model)


def chat_usage(cost: float | None = None) -> dict[str, Any]:
    extra = {} if cost is None else {"cost": cost}
    return extra | {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": REASONING_TOKENS,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def mistral_usage() -> dict[str, Any]:
    return {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}  # fmt: skip


def groq_usage() -> dict[str, Any]:
    """Groq's usage: counts and timings, no token details."""
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        "queue_time": 0.01,
        "prompt_time": 0.004,
        "completion_time": 0.05,
        "total_time": 0.054,
    }


IMAGE_TEXT_TOKENS = 10
IMAGE_INPUT_TOKENS = 40
IMAGE_OUTPUT_TOKENS = 4160


def image_usage(edit: bool) -> dict[str, Any]:
    """gpt-image-* usage: 10 text tokens (plus 40 image tokens for an edit's input image), 4,160 out."""
    image = IMAGE_INPUT_TOKENS if edit else 0
    return {
        "input_tokens": IMAGE_TEXT_TOKENS + image,
        "input_tokens_details": {"text_tokens": IMAGE_TEXT_TOKENS, "image_tokens": image},
        "output_tokens": IMAGE_OUTPUT_TOKENS,
        "total_tokens": IMAGE_TEXT_TOKENS + image + IMAGE_OUTPUT_TOKENS,
    }


def responses_usage() -> dict[str, Any]:
    return {
        "input_tokens": PROMPT_TOKENS,
        "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
        "output_tokens": COMPLETION_TOKENS,
        "output_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    }


def reply_text(body: Mapping[str, Any]) -> str:
    """Plain text, or JSON matching the requested schema for structured outputs."""
    schema = None
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema", {}).get("schema")
    text_format = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(text_format, dict) and text_format.get("type") == "json_schema":
        schema = text_format.get("schema")
    if isinstance(schema, dict):
        return json.dumps({name: _sample(spec) for name, spec in schema.get("properties", {}).items()})
    return REPLY_TEXT


def _sample(spec: Any) -> Any:
    kind = spec.get("type") if isinstance(spec, dict) else None
    return {"integer": 42, "number": 4.2, "boolean": True, "array": []}.get(kind, "fake") if kind else "fake"


def pieces(text: str, count: int | None) -> list[str]:
    """Stream deltas: the words of ``text``, or ``count`` one-word deltas when asked for."""
    if count is None:
        words = text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]
    return [f" w{i}" for i in range(count)]


class OpenAIWire:
    """Answers ``/v1/chat/completions``, ``/v1/responses``, ``/v1/embeddings``, ``/v1/completions``."""

    def __init__(self, reject_stream_options: bool = False) -> None:
        self.reject_stream_options = reject_stream_options
        self._failed_once: set[str] = set()
        self._lock = threading.Lock()

    def _first_attempt(self, headers: Mapping[str, str], body: Mapping[str, Any]) -> bool:
        """True the first time a call is seen: by ``x-fake-call-id``, else by its body."""
        key = headers.get(CALL_ID_HEADER) or json.dumps(body, sort_keys=True)
        with self._lock:
            if key in self._failed_once:
                return False
            self._failed_once.add(key)
            return True

    def handle(self, path: str, headers: Mapping[str, str], body: Mapping[str, Any]) -> WireResponse | None:
        route = path.split("?")[0].rstrip("/")
        if route.startswith("/openai/deployments/"):  # Azure: /openai/deployments/{name}/chat/completions
            route = "/v1/" + route.split("/", 4)[4]
        flavor = ""
        for prefix, name in (("/openai/v1/", "groq"), ("/mistral/v1/", "mistral")):  # the SDKs' base paths
            if route.startswith(prefix):
                flavor, route = name, route.removeprefix(prefix[:-4])
        handlers = {
            "/v1/chat/completions": self.chat,
            "/v1/responses": self.responses,
            "/v1/embeddings": self.embeddings,
            "/v1/completions": self.completions,
            "/v1/images/generations": self.images,
            "/v1/images/edits": self.images,
            "/v1/fim/completions": self.chat,  # Mistral's fill-in-the-middle answers as chat does
        }
        handler = handlers.get(route)
        if handler is None:
            return None
        failure = self.scenario_failure(headers, body)
        if failure is not None:
            return failure
        chunks = headers.get(CHUNKS_HEADER)
        cost = headers.get(COST_HEADER)
        options = Options(
            int(chunks) if chunks else None, headers.get(SCENARIO_HEADER, ""), float(cost) if cost else None, flavor
        )
        return handler(body, options)

    def scenario_failure(self, headers: Mapping[str, str], body: Mapping[str, Any]) -> WireResponse | None:
        scenario = headers.get(SCENARIO_HEADER, "")
        if self.reject_stream_options and "stream_options" in body:
            return error_response(
                400, "Unrecognized request argument supplied: stream_options", "invalid_request_error"
            )
        if scenario == "error-400":
            return error_response(400, "Invalid value for 'temperature'.", "invalid_request_error")
        if "stream_options" in body and not isinstance(body["stream_options"], (dict, type(None))):
            return error_response(
                400, "Invalid type for 'stream_options': expected an object.", "invalid_request_error"
            )
        if scenario == "error-429":
            return error_response(
                429, "Rate limit reached for requests", "requests", {"retry-after": "1", "retry-after-ms": "5"}
            )
        if scenario == "error-500" or (scenario == "fail-once-500" and self._first_attempt(headers, body)):
            return error_response(500, "The server had an error while processing your request.", "server_error")
        if scenario == "error-401-echo-key":
            key = headers.get("authorization", "").removeprefix("Bearer ")
            return error_response(401, f"Incorrect API key provided: {key}.", "invalid_request_error")
        return None

    # --- images ----------------------------------------------------------------------
    def images(self, body: Mapping[str, Any], options: Options) -> WireResponse:
        """gpt-image-*: token usage (edits bring an input image: its tokens); DALL·E: none, URLs."""
        model = str(body.get("model") or "dall-e-2")
        count = int(body.get("n") or 1)
        if not model.startswith("gpt-image"):
            return json_response(
                200, {"created": 1, "data": [{"url": f"https://fake.test/{i}.png"} for i in range(count)]}
            )
        usage = image_usage(edit="image" in body or "image[]" in body)
        if body.get("stream") in (True, "true"):
            partial = {"type": "image_generation.partial_image", "b64_json": "AAAA", "partial_image_index": 0}
            done = {"type": "image_generation.completed", "b64_json": "AAAA", "usage": usage}
            frames = [sse(partial, "image_generation.partial_image"), sse(done, "image_generation.completed")]
            return WireResponse(200, events=iter(frames))
        data = [{"b64_json": "AAAA"} for _ in range(count)]
        return json_response(200, {"created": 1, "data": data, "size": body.get("size", "1024x1024"), "usage": usage})

    # --- chat completions -----------------------------------------------------------
    def chat(self, body: Mapping[str, Any], options: Options) -> WireResponse:
        model = response_model(str(body.get("model")))
        text = reply_text(body)
        if body.get("stream"):
            return WireResponse(200, events=self._chat_events(body, model, text, options))
        return json_response(
            200,
            {
                "id": "chatcmpl-fake-1",
                "object": "chat.completion",
                "created": CREATED,
                "model": model,
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                    for i in range(int(body.get("n") or 1))
                ],
                "usage": groq_usage()
                if options.groq
                else mistral_usage()
                if options.flavor
                else chat_usage(options.cost),
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                **({"x_groq": {"id": "req_fake_groq"}} if options.groq else {}),
            },
        )

    def _chat_events(self, body: Mapping[str, Any], model: str, text: str, options: Options) -> Iterator[bytes]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": "chatcmpl-fake-1",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
        extra = {"usage": None} if include_usage else {}

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            return sse(
                {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
            )

        yield chunk({"role": "assistant", "content": "", "refusal": None}, None)
        for n, piece in enumerate(pieces(text, options.chunks)):
            if options.scenario == "stream-error" and n == 1:
                yield sse({"error": {"message": "The server had an error mid-stream.", "type": "server_error"}})
                return
            yield chunk({"content": piece}, None)
        if options.groq:  # Groq: the usage in the last chunk, under x_groq
            last = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
            yield sse({**base, "choices": [last], "x_groq": {"id": "req_fake_groq", "usage": groq_usage()}})
            yield sse("[DONE]")
            return
        if options.flavor == "mistral":  # Mistral: the usage in the last chunk, always
            last = {"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}
            yield sse({**base, "choices": [last], "usage": mistral_usage()})
            yield sse("[DONE]")
            return
        yield chunk({}, "stop")
        if include_usage:
            yield sse({**base, "choices": [], "usage": chat_usage(options.cost)})
        yield sse("[DONE]")

    # --- legacy completions -----------------------------------------------------------
    def completions(self, body: Mapping[str, Any], options: Options) -> WireResponse:
        model = str(body.get("model"))
        base = {
            "id": "cmpl-fake-1",
            "object": "text_completion",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_fake",
        }
        if not body.get("stream"):
            return json_response(
                200,
                {
                    **base,
                    "choices": [{"text": REPLY_TEXT, "index": 0, "logprobs": None, "finish_reason": "stop"}],
                    "usage": chat_usage(options.cost),
                },
            )

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def events() -> Iterator[bytes]:
            extra = {"usage": None} if include_usage else {}
            for piece in pieces(REPLY_TEXT, options.chunks):
                yield sse(
                    {**base, "choices": [{"text": piece, "index": 0, "logprobs": None, "finish_reason": None}], **extra}
                )
            yield sse(
                {**base, "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}], **extra}
            )
            if include_usage:
                yield sse({**base, "choices": [], "usage": chat_usage(options.cost)})
            yield sse("[DONE]")

        return WireResponse(200, events=events())

    # --- embeddings -------------------------------------------------------------------
    def embeddings(self, body: Mapping[str, Any], options: Options) -> WireResponse:
        inputs = body.get("input")
        count = len(inputs) if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else 1
        vector = [0.25, -0.5, 0.75, 1.0][:EMBEDDING_DIMENSIONS]
        encoded: Any = vector
        if body.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        return json_response(
            200,
            {
                "id": "emb-fake-1",
                "object": "list",
                "data": [{"object": "embedding", "index": i, "embedding": encoded} for i in range(count)],
                "model": str(body.get("model")),
                "usage": {"prompt_tokens": EMBEDDING_TOKENS, "total_tokens": EMBEDDING_TOKENS}
                | ({"completion_tokens": 0} if options.flavor == "mistral" else {}),
            },
        )

    # --- responses --------------------------------------------------------------------
    def responses(self, body: Mapping[str, Any], options: Options) -> WireResponse:
        model = response_model(str(body.get("model")))
        text = reply_text(body)
        if body.get("stream"):
            return WireResponse(200, events=self._responses_events(body, model, text, options))
        return json_response(200, self._response_object(body, model, "completed", text))

    def _response_object(self, body: Mapping[str, Any], model: str, status: str, text: str | None) -> dict[str, Any]:
        output = [] if text is None else [self._message_item(text, "completed")]
        return {
            "id": "resp_fake_1",
            "object": "response",
            "created_at": CREATED,
            "status": status,
            "model": model,
            "output": output,
            "usage": responses_usage() if status == "completed" else None,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "metadata": {},
            "parallel_tool_calls": True,
            "temperature": 1.0,
            "top_p": 1.0,
            "tool_choice": "auto",
            "tools": [],
            "text": {"format": {"type": "text"}},
            "truncation": "disabled",
            "service_tier": "default",
        }

    @staticmethod
    def _message_item(text: str, status: str) -> dict[str, Any]:
        content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if text else []
        return {"type": "message", "id": "msg_fake_1", "status": status, "role": "assistant", "content": content}

    def _responses_events(self, body: Mapping[str, Any], model: str, text: str, options: Options) -> Iterator[bytes]:
        seq = iter(range(10_000))

        def event(kind: str, **fields: Any) -> bytes:
            return sse({"type": kind, "sequence_number": next(seq), **fields}, event=kind)

        yield event("response.created", response=self._response_object(body, model, "in_progress", None))
        yield event("response.in_progress", response=self._response_object(body, model, "in_progress", None))
        yield event("response.output_item.added", output_index=0, item=self._message_item("", "in_progress"))
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        where = {"item_id": "msg_fake_1", "output_index": 0, "content_index": 0}
        yield event("response.content_part.added", **where, part=part)
        for n, piece in enumerate(pieces(text, options.chunks)):
            if options.scenario == "stream-error" and n == 1:
                yield sse({"error": {"message": "The server had an error mid-stream.", "type": "server_error"}})
                return
            yield event("response.output_text.delta", **where, delta=piece, logprobs=[])
        yield event("response.output_text.done", **where, text=text, logprobs=[])
        yield event("response.content_part.done", **where, part={**part, "text": text})
        yield event("response.output_item.done", output_index=0, item=self._message_item(text, "completed"))
        yield event("response.completed", response=self._response_object(body, model, "completed", text))
