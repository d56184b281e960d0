"""Amazon Bedrock Runtime as the fake provider answers boto3: Converse JSON, ConverseStream and
InvokeModel streams in the AWS event-stream framing, and InvokeModel bodies per model family.

Anthropic models' InvokeModel bodies are the Messages API's (answered by :mod:`anthropic_wire`);
the other families' shapes are those the Bedrock user guide documents for each model's inference
parameters. Every InvokeModel answer also carries the ``x-amzn-bedrock-*-token-count`` headers.

Fixed usage: Converse 120 uncached input tokens, 40 read from cache, 20 written (15 for 5 minutes,
5 for an hour), 30 output; the InvokeModel families 57 input and 23 output (embeddings: 9 input).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

from aimon_otel.testing.anthropic_wire import AnthropicWire, event_stream_message
from aimon_otel.testing.openai_wire import SCENARIO_HEADER, WireResponse, json_response

CONVERSE_INPUT = 120
CONVERSE_CACHE_READ = 40
CONVERSE_CACHE_WRITE_5M = 15
CONVERSE_CACHE_WRITE_1H = 5
CONVERSE_CACHE_WRITE = CONVERSE_CACHE_WRITE_5M + CONVERSE_CACHE_WRITE_1H
CONVERSE_OUTPUT = 30
INVOKE_INPUT = 57
INVOKE_OUTPUT = 23
EMBED_INPUT = 9
REPLY_PIECES = ("Hello", " from", " the fake", " Bedrock.")
REPLY = "".join(REPLY_PIECES)
EVENT_STREAM = "application/vnd.amazon.eventstream"


def aws_error(status: int, code: str, message: str) -> WireResponse:
    """A REST-JSON error as Bedrock answers it: the code in ``x-amzn-ErrorType``, the message in the body."""
    return json_response(status, {"message": message}, {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/"})


def _event(kind: str, payload: Mapping[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return event_stream_message(headers, json.dumps(payload).encode())


def _chunk(payload: Mapping[str, Any]) -> bytes:
    import base64

    return _event("chunk", {"bytes": base64.b64encode(json.dumps(payload).encode()).decode()})


def converse_usage() -> dict[str, Any]:
    return {
        "inputTokens": CONVERSE_INPUT,
        "outputTokens": CONVERSE_OUTPUT,
        "totalTokens": CONVERSE_INPUT + CONVERSE_OUTPUT + CONVERSE_CACHE_READ + CONVERSE_CACHE_WRITE,
        "cacheReadInputTokens": CONVERSE_CACHE_READ,
        "cacheWriteInputTokens": CONVERSE_CACHE_WRITE,
        "cacheDetails": [
            {"ttl": "5m", "inputTokens": CONVERSE_CACHE_WRITE_5M},
            {"ttl": "1h", "inputTokens": CONVERSE_CACHE_WRITE_1H},
        ],
    }


def _metrics(embeddings: bool = False) -> dict[str, int]:
    return {
        "inputTokenCount": EMBED_INPUT if embeddings else INVOKE_INPUT,
        "outputTokenCount": INVOKE_OUTPUT,
        "invocationLatency": 420,
        "firstByteLatency": 120,
    }


class BedrockWire:
    """Answers ``/model/{modelId}/converse``, ``/converse-stream``, ``/invoke`` and ``/invoke-with-response-stream``."""

    def __init__(self, anthropic: AnthropicWire) -> None:
        self.anthropic = anthropic

    def handle(self, path: str, headers: Mapping[str, str], body: Mapping[str, Any]) -> WireResponse | None:
        route = path.split("?")[0].rstrip("/")
        if not route.startswith("/model/"):
            return None
        parts = route.split("/")
        if len(parts) != 4:
            return None
        model, action = unquote(parts[2]), parts[3]
        scenario = headers.get(SCENARIO_HEADER, "")
        failure = self.failure(scenario)
        if failure is not None:
            return failure
        if action == "converse":
            return self.converse(body, scenario)
        if action == "converse-stream":
            return WireResponse(200, events=self.converse_events(scenario), media_type=EVENT_STREAM)
        if action not in ("invoke", "invoke-with-response-stream"):
            return None
        streamed = action == "invoke-with-response-stream"
        if "anthropic." in model:
            answer = self.anthropic.bedrock(route, headers, body)
            if not streamed:
                answer.headers.update(_count_headers(False))
            return answer
        if streamed:
            return WireResponse(200, events=self.invoke_events(_family(model)), media_type=EVENT_STREAM)
        kind = _family(model)
        return json_response(200, _invoke_body(kind, scenario), _count_headers(kind.endswith("embed")))

    def failure(self, scenario: str) -> WireResponse | None:
        if scenario == "aws-throttled":
            return aws_error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
        if scenario == "aws-denied":
            return aws_error(
                403, "AccessDeniedException", "You don't have access to the model with the specified model ID."
            )
        if scenario == "aws-invalid":
            return aws_error(400, "ValidationException", "The provided model identifier is invalid.")
        return None

    def converse(self, body: Mapping[str, Any], scenario: str) -> WireResponse:
        guarded = scenario == "guardrail"
        text = "Sorry, the model cannot answer this question." if guarded else REPLY
        return json_response(
            200,
            {
                "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                "stopReason": "guardrail_intervened" if guarded else "end_turn",
                "usage": converse_usage(),
                "metrics": {"latencyMs": 420},
            },
        )

    def converse_events(self, scenario: str) -> Iterator[bytes]:
        yield _event("messageStart", {"role": "assistant"})
        for piece in REPLY_PIECES:
            yield _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
        yield _event("contentBlockStop", {"contentBlockIndex": 0})
        reason = "guardrail_intervened" if scenario == "guardrail" else "end_turn"
        yield _event("messageStop", {"stopReason": reason})
        yield _event("metadata", {"usage": converse_usage(), "metrics": {"latencyMs": 420}})

    def invoke_events(self, kind: str) -> Iterator[bytes]:
        """Each family's stream chunks; the last one adds ``amazon-bedrock-invocationMetrics``."""
        last = len(REPLY_PIECES) - 1
        for index, piece in enumerate(REPLY_PIECES):
            done = index == last
            chunk: dict[str, Any]
            if kind == "meta":
                chunk = {
                    "generation": piece,
                    "prompt_token_count": INVOKE_INPUT if index == 0 else None,
                    "generation_token_count": (index + 1) * 5 if not done else INVOKE_OUTPUT,
                    "stop_reason": "stop" if done else None,
                }
            elif kind == "nova":
                if index == 0:
                    yield _chunk({"messageStart": {"role": "assistant"}})
                chunk = {"contentBlockDelta": {"delta": {"text": piece}, "contentBlockIndex": 0}}
            elif kind == "titan-text":
                chunk = {
                    "outputText": piece,
                    "index": 0,
                    "totalOutputTextTokenCount": (index + 1) * 5 if not done else INVOKE_OUTPUT,
                    "completionReason": "FINISH" if done else None,
                    "inputTextTokenCount": INVOKE_INPUT if index == 0 else None,
                }
            elif kind == "cohere":
                chunk = {"event_type": "text-generation", "text": piece, "is_finished": False}
            else:  # mistral and the OpenAI-shaped families
                chunk = {"outputs": [{"text": piece, "stop_reason": "stop" if done else None}]}
            if done:
                if kind == "nova":
                    yield _chunk(chunk)
                    yield _chunk({"messageStop": {"stopReason": "end_turn"}})
                    chunk = {"metadata": {"usage": {"inputTokens": INVOKE_INPUT, "outputTokens": INVOKE_OUTPUT}}}
                chunk = {**chunk, "amazon-bedrock-invocationMetrics": _metrics()}
            yield _chunk(chunk)


def _count_headers(embeddings: bool) -> dict[str, str]:
    if embeddings:
        return {"x-amzn-bedrock-input-token-count": str(EMBED_INPUT), "x-amzn-bedrock-invocation-latency": "40"}
    return {
        "x-amzn-bedrock-input-token-count": str(INVOKE_INPUT),
        "x-amzn-bedrock-output-token-count": str(INVOKE_OUTPUT),
        "x-amzn-bedrock-invocation-latency": "420",
    }


def _family(model: str) -> str:
    from aimon_otel.instrumentation.providers.bedrock import family

    return family(model)


def _invoke_body(kind: str, scenario: str) -> dict[str, Any]:
    """A non-streamed InvokeModel body in the family's documented shape."""
    if kind == "meta":
        return {
            "generation": REPLY,
            "prompt_token_count": INVOKE_INPUT,
            "generation_token_count": INVOKE_OUTPUT,
            "stop_reason": "stop",
        }
    if kind == "nova":
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": REPLY}]}},
            "stopReason": "end_turn",
            "usage": {
                "inputTokens": INVOKE_INPUT,
                "outputTokens": INVOKE_OUTPUT,
                "totalTokens": INVOKE_INPUT + INVOKE_OUTPUT,
                "cacheReadInputTokenCount": 0,
                "cacheWriteInputTokenCount": 0,
            },
        }
    if kind == "titan-text":
        return {
            "inputTextTokenCount": INVOKE_INPUT,
            "results": [{"tokenCount": INVOKE_OUTPUT, "outputText": REPLY, "completionReason": "FINISH"}],
        }
    if kind == "titan-embed":
        return {"embedding": [0.25] * 8, "inputTextTokenCount": EMBED_INPUT}
    if kind == "cohere-embed":
        return {"embeddings": [[0.5] * 8], "id": "emb-1", "response_type": "embeddings_floats", "texts": ["hi"]}
    if kind == "cohere":
        return {
            "response_id": "r-1",
            "text": REPLY,
            "generation_id": "g-1",
            "finish_reason": "COMPLETE",
            "chat_history": [],
        }
    if kind == "mistral":
        return {"outputs": [{"text": REPLY, "stop_reason": "stop"}]}
    body: dict[str, Any] = {
        "id": "chatcmpl-bedrock-1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": INVOKE_INPUT,
            "completion_tokens": INVOKE_OUTPUT,
            "total_tokens": INVOKE_INPUT + INVOKE_OUTPUT,
        },
    }
    if scenario == "guardrail":
        body["amazon-bedrock-guardrailAction"] = "INTERVENED"
    return body
