"""The Gemini API and Vertex AI's Gemini endpoints as the fake provider answers them: JSON and SSE.

Routes (the model is in the URL): ``/v1beta/models/{m}:generateContent`` (Gemini API; also
``/v1/...``), ``/v1beta1/publishers/google/models/{m}:...`` (Vertex express) and
``/v1beta1/projects/{p}/locations/{l}/publishers/google/models/{m}:...`` (Vertex), each with
``:generateContent``, ``:streamGenerateContent?alt=sse``, ``:countTokens``, ``:batchEmbedContents``
(Gemini API embeddings: no usage, as the real API), ``:embedContent`` and ``:predict`` (Vertex
embeddings, with token counts).

Fixed usage: a 1,200-token prompt of which 400 were read from a cached content, 80 candidate
tokens, 30 thought tokens and 50 tool-use prompt tokens (``x-fake-prompt-tokens`` sets the prompt,
for long-context price tiers; scenario ``audio-video`` gives the prompt and the cache by modality).
Streams send three chunks; as the real API does, the earlier ones
carry partial usage (prompt and candidates so far) and only the last has the thoughts, tool-use
tokens and ``finishReason``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from aimon_otel.testing.openai_wire import SCENARIO_HEADER, WireResponse, json_response, sse

PROMPT_TOKENS = 1200
CACHED_TOKENS = 400
CANDIDATES_TOKENS = 80
THOUGHTS_TOKENS = 30
TOOL_USE_PROMPT_TOKENS = 50
COUNT_TOKENS = 31
EMBEDDING_TOKENS = 6
PROMPT_TOKENS_HEADER = "x-fake-prompt-tokens"
REPLY_TEXT = "Hello from the fake Gemini provider."
_STREAM_PIECES = ("Hello from ", "the fake ", "Gemini provider.")
_ERRORS = {
    "error-400": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    "error-429": (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "error-500": (500, "INTERNAL", "An internal error has occurred."),
    "error-403": (403, "PERMISSION_DENIED", "Permission denied on resource project."),
}


def gemini_error(status: int, code: str, message: str) -> WireResponse:
    return json_response(status, {"error": {"code": status, "message": message, "status": code}})


MEDIA_PROMPT = {"TEXT": 250, "AUDIO": 550, "VIDEO": 300, "IMAGE": 100}
"""Scenario ``audio-video``: the 1,200-token prompt by modality ..."""
MEDIA_CACHED = {"TEXT": 100, "AUDIO": 250, "VIDEO": 50}
"""... and the 400 cached tokens by modality (audio and cached audio cost more than text)."""


def _details(counts: Mapping[str, int]) -> list[dict[str, Any]]:
    return [{"modality": modality, "tokenCount": count} for modality, count in counts.items()]


def usage_metadata(
    prompt: int, final: bool = True, candidates: int = CANDIDATES_TOKENS, media: bool = False
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "cachedContentTokenCount": CACHED_TOKENS,
        "promptTokensDetails": _details(MEDIA_PROMPT if media else {"TEXT": prompt}),
        "cacheTokensDetails": _details(MEDIA_CACHED if media else {"TEXT": CACHED_TOKENS}),
        "candidatesTokensDetails": _details({"TEXT": candidates}),
    }
    if final:
        usage["thoughtsTokenCount"] = THOUGHTS_TOKENS
        usage["toolUsePromptTokenCount"] = TOOL_USE_PROMPT_TOKENS
    usage["totalTokenCount"] = prompt + candidates + (THOUGHTS_TOKENS + TOOL_USE_PROMPT_TOKENS if final else 0)
    return usage


class GeminiWire:
    """Answers the Gemini API's and Vertex AI's model routes."""

    def handle(self, path: str, headers: Mapping[str, str], body: Mapping[str, Any]) -> WireResponse | None:
        route = path.split("?")[0]
        if "/models/" not in route or ":" not in route.rsplit("/", 1)[-1]:
            return None
        model, _, method = route.rsplit("/models/", 1)[-1].partition(":")
        vertex = "/publishers/google/" in route
        scenario = headers.get(SCENARIO_HEADER, "")
        if scenario == "error-401-echo-key":  # a provider that echoes the key back, as some do
            key = headers.get("x-goog-api-key", "")
            return gemini_error(401, "UNAUTHENTICATED", f"API key not valid: {key}. Please pass a valid API key.")
        if scenario in _ERRORS:
            return gemini_error(*_ERRORS[scenario])
        prompt = int(headers.get(PROMPT_TOKENS_HEADER) or PROMPT_TOKENS)
        # The Gemini API names the model that answered as asked; Vertex adds nothing; some answers
        # put the "models/" prefix on it.
        version = f"models/{model}" if scenario == "model-version-prefixed" else model
        media = scenario == "audio-video"
        if media:
            prompt = sum(MEDIA_PROMPT.values())
        if method == "generateContent":
            return json_response(200, self.answer(model, version, prompt, media))
        if method == "streamGenerateContent":
            return WireResponse(200, events=self.stream(version, prompt, scenario, media))
        if method == "countTokens":
            return json_response(200, {"totalTokens": COUNT_TOKENS})
        if method == "batchEmbedContents":
            requests = body.get("requests") or [{}]
            return json_response(200, {"embeddings": [{"values": [0.1, 0.2, 0.3]} for _ in requests]})
        if method == "embedContent" and vertex:
            return json_response(
                200,
                {"embedding": {"values": [0.1, 0.2, 0.3]}, "usageMetadata": {"promptTokenCount": EMBEDDING_TOKENS}},
            )
        if method == "predict" and vertex:
            instances = body.get("instances") or [{}]
            return json_response(
                200,
                {
                    "predictions": [
                        {
                            "embeddings": {
                                "values": [0.1, 0.2],
                                "statistics": {"token_count": EMBEDDING_TOKENS, "truncated": False},
                            }
                        }
                        for _ in instances
                    ],
                    "metadata": {"billableCharacterCount": 2 * len(instances)},
                },
            )
        return None

    def answer(self, model: str, version: str, prompt: int, media: bool = False) -> dict[str, Any]:
        return {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": REPLY_TEXT}]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": usage_metadata(prompt, media=media),
            "modelVersion": version,
            "responseId": f"fake-{model}",
        }

    def stream(self, version: str, prompt: int, scenario: str, media: bool = False) -> Iterator[bytes]:
        for n, piece in enumerate(_STREAM_PIECES):
            last = n == len(_STREAM_PIECES) - 1
            if scenario == "stream-error" and n == 1:
                yield sse({"error": {"code": 500, "message": "stream broke", "status": "INTERNAL"}})
                return
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}
            if last:
                candidate["finishReason"] = "STOP"
            candidates = CANDIDATES_TOKENS if last else (n + 1) * 20
            yield sse(
                {
                    "candidates": [candidate],
                    "usageMetadata": usage_metadata(prompt, final=last, candidates=candidates, media=media),
                    "modelVersion": version,
                    "responseId": "fake-stream",
                }
            )
