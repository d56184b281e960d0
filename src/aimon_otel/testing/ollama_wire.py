"""Ollama's REST API as the fake provider answers it: ``/api/chat``, ``/api/generate``, ``/api/embed`` and the
legacy ``/api/embeddings``; streams are NDJSON, one JSON object a line, the last with ``done: true`` and the
counts. Fixed usage: 26 prompt tokens evaluated, 11 generated (embeddings: 6)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from aimon_otel.testing.openai_wire import SCENARIO_HEADER, WireResponse, json_response

PROMPT_EVAL_COUNT = 26
EVAL_COUNT = 11
EMBED_COUNT = 6
PIECES = ("Hello", " from", " a local", " model.")
REPLY = "".join(PIECES)
CREATED_AT = "2026-12-02T10:00:00.000000Z"
NDJSON = "application/x-ndjson"


def _timings() -> dict[str, Any]:
    return {
        "total_duration": 5_043_500_667,
        "load_duration": 5_025_959,
        "prompt_eval_count": PROMPT_EVAL_COUNT,
        "prompt_eval_duration": 325_953_000,
        "eval_count": EVAL_COUNT,
        "eval_duration": 4_709_213_000,
    }


class OllamaWire:
    def handle(self, path: str, headers: Mapping[str, str], body: Mapping[str, Any]) -> WireResponse | None:
        route = path.split("?")[0].rstrip("/")
        if route not in ("/api/chat", "/api/generate", "/api/embed", "/api/embeddings"):
            return None
        if headers.get(SCENARIO_HEADER) == "error-429":
            return json_response(429, {"error": "too many requests"})
        model = str(body.get("model"))
        if model == "missing-model":
            return json_response(404, {"error": f"model '{model}' not found"})
        if route == "/api/embed":
            inputs = body.get("input")
            count = len(inputs) if isinstance(inputs, list) else 1
            return json_response(
                200,
                {"model": model, "embeddings": [[0.1, 0.2, 0.3]] * count, "total_duration": 14_143_917,
                 "load_duration": 1_019_500, "prompt_eval_count": EMBED_COUNT},
            )  # fmt: skip
        if route == "/api/embeddings":
            return json_response(200, {"embedding": [0.1, 0.2, 0.3]})
        chat = route == "/api/chat"
        if body.get("stream", True):
            return WireResponse(200, events=self._lines(model, chat), media_type=NDJSON)
        return json_response(200, self._part(model, chat, REPLY) | {"done": True, "done_reason": "stop"} | _timings())

    def _part(self, model: str, chat: bool, text: str) -> dict[str, Any]:
        base: dict[str, Any] = {"model": model, "created_at": CREATED_AT, "done": False}
        if chat:
            return base | {"message": {"role": "assistant", "content": text}}
        return base | {"response": text}

    def _lines(self, model: str, chat: bool) -> Iterator[bytes]:
        for piece in PIECES:
            yield json.dumps(self._part(model, chat, piece)).encode() + b"\n"
        last = self._part(model, chat, "") | {"done": True, "done_reason": "stop"} | _timings()
        yield json.dumps(last).encode() + b"\n"
