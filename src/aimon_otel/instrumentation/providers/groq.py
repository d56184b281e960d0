"""The ``groq`` SDK: chat completions, read as the OpenAI chat API they copy.

Groq's SDK is generated like openai's (the same client, ``Stream`` and response shapes), so the
OpenAI chat endpoint reads it, with two differences: the provider is ``groq`` whatever the base URL
(a proxy in front of Groq is still Groq), and a stream's usage comes in its last chunk under
``x_groq.usage`` without being asked for (the SDK takes no ``stream_options``), so nothing is added
to the request and nothing hidden from the app.
"""

from __future__ import annotations

from typing import Any

from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.providers.base import Plan, Target
from aimon_otel.instrumentation.providers.openai import ChatCompletions, ChunkStreamReader

PROVIDER = "groq"


class GroqChatCompletions(ChatCompletions):
    default_provider = PROVIDER

    def plan(self, instance: Any, kwargs: dict[str, Any]) -> Plan:
        plan = super().plan(instance, kwargs)
        plan.invocation.provider = PROVIDER
        return plan

    def sending(self, invocation: Invocation, kwargs: dict[str, Any], base_url: str) -> Plan:
        return Plan(invocation, kwargs)

    def stream_reader(self, invocation: Invocation, plan: Plan) -> ChunkStreamReader:
        return GroqChunkReader(False, self.settings)


class GroqChunkReader(ChunkStreamReader):
    """OpenAI chunks; the usage of the last one is under ``x_groq``."""

    __slots__ = ()

    def on_item(self, chunk: Any) -> None:
        super().on_item(chunk)
        extra = getattr(chunk, "x_groq", None)
        usage = getattr(extra, "usage", None) if extra is not None else None
        if usage is not None:
            self.usage = usage


TARGETS: tuple[Target, ...] = (
    Target("groq.resources.chat.completions", "Completions.create", GroqChatCompletions, False),
    Target("groq.resources.chat.completions", "AsyncCompletions.create", GroqChatCompletions, True),
)
