"""Cohere's v2 API as the fake provider answers it: ``/v2/chat`` (JSON, or SSE events when ``stream``),
``/v2/embed`` and ``/v2/rerank``. The billed counts differ from the model's own, as Cohere's do: 12 input
and 9 output tokens billed, 214 and 9 seen by the model (the prompt template), 8 billed for an embed,
1 search unit for a rerank."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from aimon_otel.testing.openai_wire import SCENARIO_HEADER, WireResponse, json_response, sse

BILLED_INPUT = 12
BILLED_OUTPUT = 9
MODEL_INPUT = 214
MODEL_OUTPUT = 9
EMBED_BILLED = 8
PIECES = ("Hello", " from", " Cohere.")
REPLY = "".join(PIECES)


def chat_usage() -> dict[str, Any]:
    return {
        "billed_units": {"input_tokens": BILLED_INPUT, "output_tokens": BILLED_OUTPUT},
        "tokens": {"input_tokens": MODEL_INPUT, "output_tokens": MODEL_OUTPUT},
    }


class CohereWire:
    def handle(self, path: str, headers: Mapping[str, str], body: Mapping[str, Any]) -> WireResponse | None:
        route = path.split("?")[0].rstrip("/")
        if route not in ("/v2/chat", "/v2/embed", "/v2/rerank"):
            return None
        if headers.get(SCENARIO_HEADER) == "error-429":
            return json_response(
                429, {"message": "You are using a Trial key, which is limited to 10 API calls / minute."}
            )
        if route == "/v2/embed":
            texts = body.get("texts") or []
            return json_response(
                200,
                {
                    "id": "emb-fake-1",
                    "embeddings": {"float": [[0.1, 0.2, 0.3, 0.4]] * len(texts)},
                    "texts": texts,
                    "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": EMBED_BILLED}},
                },
            )
        if route == "/v2/rerank":
            documents = body.get("documents") or []
            return json_response(
                200,
                {
                    "id": "rr-fake-1",
                    "results": [{"index": i, "relevance_score": 0.9 - i / 10} for i in range(len(documents))],
                    "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
                },
            )
        if body.get("stream"):
            return WireResponse(200, events=self._events())
        return json_response(
            200,
            {
                "id": "chat-fake-1",
                "finish_reason": "COMPLETE",
                "message": {"role": "assistant", "content": [{"type": "text", "text": REPLY}]},
                "usage": chat_usage(),
            },
        )

    def _events(self) -> Iterator[bytes]:
        yield sse({"type": "message-start", "id": "chat-fake-1",
                   "delta": {"message": {"role": "assistant", "content": []}}}, event="message-start")  # fmt: skip
        yield sse({"type": "content-start", "index": 0,
                   "delta": {"message": {"content": {"type": "text", "text": ""}}}}, event="content-start")  # fmt: skip
        for piece in PIECES:
            yield sse({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": piece}}}},
                      event="content-delta")  # fmt: skip
        yield sse({"type": "content-end", "index": 0}, event="content-end")
        yield sse({"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": chat_usage()}},
                  event="message-end")  # fmt: skip
        yield sse("[DONE]")
