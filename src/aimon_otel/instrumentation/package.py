"""The SDKs aimon-otel instruments; any one of them installed is enough."""

from __future__ import annotations

_instruments_any: tuple[str, ...] = (
    "openai >= 1.40",
    "anthropic >= 0.43",
    "google-genai >= 1.8",
    "botocore >= 1.34.116",
    "groq >= 0.9",
    "mistralai >= 1.2",
    "ollama >= 0.4",
    "cohere >= 5.13",
    "litellm >= 1.60",
)
