"""The Anthropic Messages API as the fake provider answers it: JSON bodies and SSE events.

Fixed usage: 100 uncached input tokens, 200 read from cache, 300 written to cache (200 for
5 minutes, 100 for 1 hour), 50 output tokens. Streams send ``message_delta`` twice with
*cumulative* output counts (20, then 50), so a consumer that sums them is caught.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

from aimon_otel.testing.openai_wire import (
    CHUNKS_HEADER,
    SCENARIO_HEADER,
    WireResponse,
    json_response,
    pieces,
    reply_text,
    sse,
)

INPUT_TOKENS = 100
CACHE_READ_TOKENS = 200
CACHE_WRITE_5M_TOKENS = 200
CACHE_WRITE_1H_TOKENS = 100
CACHE_WRITE_TOKENS = CACHE_WRITE_5M_TOKENS + CACHE_WRITE_1H_TOKENS
OUTPUT_TOKENS = 50
COUNT_TOKENS = 42
REPLY_TEXT = "Hello from the fake Anthropic provider."


def usage(output_tokens: int = OUTPUT_TOKENS) -> dict[str, Any]:
    return {
        "input_tokens": INPUT_TOKENS,
        "cache_creation_input_tokens": CACHE_WRITE_TOKENS,
        "cache_read_input_tokens": CACHE_READ_TOKENS,
        "cache_creation": {
            "ephemeral_5m_input_tokens": CACHE_WRITE_5M_TOKENS,
            "ephemeral_1h_input_tokens": CACHE_WRITE_1H_TOKENS,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


COMPACTION_PASSES = (
    {
        "type": "compaction",
        "input_tokens": 100,
        "cache_creation_input_tokens": 55_096,
        "cache_read_input_tokens": 0,
        "output_tokens": 131,
    },
    {
        "type": "message",
        "input_tokens": 229,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 5,
    },
)
"""Scenario ``compaction``: server-side compaction whose first pass writes the cache (55,425 input
tokens, 55,096 of them a cache write, 136 output in all). The top-level usage is the last pass's
alone, as the API reports it; only ``usage.iterations`` has the compaction pass."""


def compaction_usage(final: bool = True) -> dict[str, Any]:
    last = COMPACTION_PASSES[-1]
    top: dict[str, Any] = {key: value for key, value in last.items() if key != "type"}
    top["service_tier"] = "standard"
    if final:
        top["iterations"] = [dict(entry) for entry in COMPACTION_PASSES]
    else:
        top["output_tokens"] = 1
    return top


def structured_reply(body: Mapping[str, Any]) -> str:
    """JSON matching ``output_config.format``'s schema when one is asked for (``messages.parse``)."""
    output_config = body.get("output_config")
    output_format = output_config.get("format") if isinstance(output_config, dict) else None
    if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
        return reply_text(
            {"response_format": {"type": "json_schema", "json_schema": {"schema": output_format.get("schema")}}}
        )
    return REPLY_TEXT


def anthropic_error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> WireResponse:
    return json_response(status, {"type": "error", "error": {"type": kind, "message": message}}, headers)


class AnthropicWire:
    """Answers ``/v1/messages``, ``/v1/messages/count_tokens``, ``/v1/complete`` and Vertex's rawPredict."""

    def handle(self, path: str, headers: Mapping[str, str], body: Mapping[str, Any]) -> WireResponse | None:
        route = path.split("?")[0].rstrip("/")
        scenario = headers.get(SCENARIO_HEADER, "")
        if route.startswith("/model/") and route.endswith(("/invoke", "/invoke-with-response-stream")):
            return self.bedrock(route, headers, body)
        if ":rawPredict" in route or ":streamRawPredict" in route:  # Vertex: the model is in the URL
            model = route.rsplit("/models/", 1)[-1].split(":")[0]
            return self.messages({**body, "model": model}, scenario, headers.get(CHUNKS_HEADER))
        if route in ("/v1/messages/count_tokens", "/v1/messages/count_tokens/"):
            return json_response(200, {"input_tokens": COUNT_TOKENS})
        if route == "/v1/messages":
            if scenario == "error-401-echo-key":  # a provider that echoes the key back, as some do
                key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
                return anthropic_error(401, "authentication_error", f"invalid x-api-key: {key}")
            return self.messages(body, scenario, headers.get(CHUNKS_HEADER))
        if route == "/v1/complete":
            return self.complete(body)
        return None

    def bedrock(self, route: str, headers: Mapping[str, str], body: Mapping[str, Any]) -> WireResponse:
        """Bedrock's InvokeModel: the model is in the URL; a stream is AWS event-stream frames of SSE events."""
        model = unquote(route.split("/")[2])
        streamed = route.endswith("/invoke-with-response-stream")
        answer = self.messages(
            {**body, "model": model, "stream": streamed}, headers.get(SCENARIO_HEADER, ""), headers.get(CHUNKS_HEADER)
        )
        if answer.events is None:
            return answer
        return WireResponse(
            answer.status, events=as_event_stream(answer.events), media_type="application/vnd.amazon.eventstream"
        )

    def failure(self, scenario: str) -> WireResponse | None:
        if scenario == "error-400":
            return anthropic_error(400, "invalid_request_error", "max_tokens: Field required")
        if scenario == "error-429":
            return anthropic_error(
                429,
                "rate_limit_error",
                "Number of requests has exceeded your rate limit",
                {"retry-after": "0", "retry-after-ms": "5"},
            )
        if scenario == "error-529":
            return anthropic_error(529, "overloaded_error", "Overloaded", {"retry-after-ms": "5"})
        return None

    def messages(self, body: Mapping[str, Any], scenario: str, chunks: str | None) -> WireResponse:
        failure = self.failure(scenario)
        if failure is not None:
            return failure
        model = str(body.get("model"))
        tool = scenario == "tool-use"
        text = structured_reply(body)
        if body.get("stream"):
            return WireResponse(200, events=self._events(model, tool, scenario, int(chunks) if chunks else None, text))
        content: list[dict[str, Any]] = (
            [{"type": "tool_use", "id": "toolu_fake_1", "name": "get_weather", "input": {"city": "Paris"}}]
            if tool
            else [{"type": "text", "text": text}]
        )
        return json_response(
            200,
            {
                "id": "msg_fake_1",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": "tool_use" if tool else "end_turn",
                "stop_sequence": None,
                "usage": compaction_usage() if scenario == "compaction" else usage(),
            },
        )

    def _events(self, model: str, tool: bool, scenario: str, chunks: int | None, text: str) -> Iterator[bytes]:
        def event(kind: str, **fields: Any) -> bytes:
            return sse({"type": kind, **fields}, event=kind)

        start: dict[str, Any] = {
            "id": "msg_fake_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": compaction_usage(final=False) if scenario == "compaction" else usage(output_tokens=1),
        }
        yield event("message_start", message=start)
        if tool:
            yield event(
                "content_block_start",
                index=0,
                content_block={"type": "tool_use", "id": "toolu_fake_1", "name": "get_weather", "input": {}},
            )
            for part in ('{"city": ', '"Paris"}'):
                yield event("content_block_delta", index=0, delta={"type": "input_json_delta", "partial_json": part})
        else:
            yield event("content_block_start", index=0, content_block={"type": "text", "text": ""})
            yield event("ping")
            for n, piece in enumerate(pieces(text, chunks)):
                if scenario == "stream-error" and n == 1:
                    yield sse(
                        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, event="error"
                    )
                    return
                yield event("content_block_delta", index=0, delta={"type": "text_delta", "text": piece})
        yield event("content_block_stop", index=0)
        yield event("message_delta", delta={"stop_reason": None, "stop_sequence": None}, usage={"output_tokens": 20})
        yield event(
            "message_delta",
            delta={"stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None},
            usage=compaction_usage() if scenario == "compaction" else {"output_tokens": OUTPUT_TOKENS},
        )
        yield event("message_stop")

    def complete(self, body: Mapping[str, Any]) -> WireResponse:
        completion = {
            "type": "completion",
            "id": "compl_fake_1",
            "completion": " Hello",
            "stop_reason": "stop_sequence",
            "model": str(body.get("model")),
            "stop": "\n\nHuman:",
            "log_id": "compl_fake_1",
        }
        if body.get("stream"):
            return WireResponse(200, events=iter([sse(json.dumps(completion), event="completion")]))
        return json_response(200, completion)


def as_event_stream(frames: Iterator[bytes]) -> Iterator[bytes]:
    """SSE frames re-sent as Bedrock sends them: one AWS event-stream ``chunk`` message per event."""
    for frame in frames:
        data = next(line[6:] for line in frame.decode().splitlines() if line.startswith("data: "))
        payload = json.dumps({"bytes": base64.b64encode(data.encode()).decode()}).encode()
        yield event_stream_message(
            {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}, payload
        )


def event_stream_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One message of the AWS event-stream binary format (string headers only): prelude, CRCs, headers, payload."""
    encoded = b"".join(
        struct.pack("!B", len(name)) + name.encode() + struct.pack("!BH", 7, len(value.encode())) + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    message = prelude + struct.pack("!I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack("!I", zlib.crc32(message))
