"""LiteLLM's SDK: ``litellm.completion``, ``acompletion``, ``embedding``, ``aembedding``, streams included.

One span per call, at LiteLLM's layer: it knows the provider it routed to (``custom_llm_provider``)
and the model as it resolved it, and it is the call the app made. When LiteLLM goes through an SDK
aimon-otel also wraps (``openai`` for OpenAI and Azure), that inner call runs inside this one and is
not traced again (the same "one span per call" guard SDK methods that call each other use), so a call
has one span and one cost whichever route it took.

The price is ours, from LiteLLM's normalised usage (``prompt_tokens`` with cached input, cache reads
and writes, 5-minute and 1-hour writes); LiteLLM's own ``response_cost`` is recorded beside it as
``aimon.cost.reported``, never used as the price. Streams ask for usage (``stream_options``) as
OpenAI chat streams do, and the usage-only chunk the app did not ask for is hidden from it.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.util.types import AttributeValue

from aimon_otel import semconv
from aimon_otel.config import Settings
from aimon_otel.instrumentation.content import field, to_json
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.instrumentation.providers.base import Endpoint, Plan, StreamReader
from aimon_otel.instrumentation.providers.openai import (
    ChunkStreamReader,
    StreamUsagePlan,
    chat_message,
    embeddings_usage,
    record_choices,
)
from aimon_otel.instrumentation.providers.request import request_numbers, stop_sequences
from aimon_otel.instrumentation.usage import CountReader, Usage

COST_REPORTED = "aimon.cost.reported"
PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "azure": "azure.ai.openai",
    "azure_text": "azure.ai.openai",
    "azure_ai": "azure.ai.openai",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "groq": "groq",
    "mistral": "mistral_ai",
    "codestral": "mistral_ai",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "ollama": "ollama",
    "ollama_chat": "ollama",
    "openrouter": "openrouter",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "perplexity": "perplexity",
}
"""LiteLLM's ``custom_llm_provider`` -> ``gen_ai.provider.name`` (others keep LiteLLM's name)."""
_NUMBERS = (
    ("max_tokens", semconv.REQUEST_MAX_TOKENS),
    ("max_completion_tokens", semconv.REQUEST_MAX_TOKENS),
    ("temperature", semconv.REQUEST_TEMPERATURE),
    ("top_p", semconv.REQUEST_TOP_P),
    ("seed", semconv.REQUEST_SEED),
    ("n", semconv.REQUEST_CHOICE_COUNT),
    ("frequency_penalty", semconv.REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", semconv.REQUEST_PRESENCE_PENALTY),
)


def litellm_usage(usage: Any) -> Usage | None:
    """LiteLLM's ``Usage``: OpenAI's names, with the cache writes of the providers that bill them."""
    if usage is None:
        return None
    read = CountReader()
    prompt_details = field(usage, "prompt_tokens_details")
    completion_details = field(usage, "completion_tokens_details")
    cache_read = field(usage, "cache_read_input_tokens")
    if cache_read is None:
        cache_read = field(prompt_details, "cached_tokens")
    cache_write = field(usage, "cache_creation_input_tokens")
    if cache_write is None:
        cache_write = field(prompt_details, "cache_creation_tokens")
    by_ttl = field(prompt_details, "cache_creation_token_details")
    write_5m = read.count(field(by_ttl, "ephemeral_5m_input_tokens"), "ephemeral_5m_input_tokens")
    write_1h = read.count(field(by_ttl, "ephemeral_1h_input_tokens"), "ephemeral_1h_input_tokens")
    writes = read.count(cache_write, "cache_creation_input_tokens")
    split = writes is not None and (write_5m or 0) + (write_1h or 0) == writes and by_ttl is not None
    return Usage(
        input_tokens=read.count(field(usage, "prompt_tokens"), "prompt_tokens", required=True),
        output_tokens=read.count(field(usage, "completion_tokens"), "completion_tokens", required=True),
        cache_read_input_tokens=read.count(cache_read, "cached_tokens") or None,
        cache_creation_input_tokens=writes or None,
        cache_creation_5m_input_tokens=(write_5m or 0) if split and writes else None,
        cache_creation_1h_input_tokens=(write_1h or 0) if split and writes else None,
        reasoning_output_tokens=read.count(field(completion_details, "reasoning_tokens"), "reasoning_tokens") or None,
        problems=read.result(),
    )


def _reported(value: Any) -> dict[str, AttributeValue]:
    return {COST_REPORTED: float(value)} if isinstance(value, (int, float)) and not isinstance(value, bool) else {}


class LiteLLMEndpoint(Endpoint):
    operation = semconv.OP_CHAT
    stream_async: bool | None = False

    def __init__(self, settings: Settings, stream_types: tuple[type, ...]) -> None:
        super().__init__(settings, stream_types)
        import litellm  # imported: this endpoint is made once litellm is

        self.resolve = litellm.get_llm_provider
        self._routes: dict[tuple[str, Any, Any, int], tuple[str, str | None]] = {}
        """LiteLLM's routing of (model, custom_llm_provider, api_base), remembered: asking it again costs
        about as much as the rest of our work on a call. Bounded; LiteLLM's routing of a name does not change
        while it runs, except through its alias map, whose size is part of the key."""
        self._litellm = litellm

    def route(self, model: str, custom: Any, base: Any) -> tuple[str, str | None]:
        key = (model, custom, base, len(getattr(self._litellm, "model_alias_map", None) or ()))
        found = self._routes.get(key)
        if found is None:
            try:
                resolved, provider_name, _, _ = self.resolve(model, custom, base)
            except Exception:  # LiteLLM cannot route it either: it will raise, and say why
                resolved, provider_name = model, custom
            found = (resolved, provider_name)
            if len(self._routes) >= 512:
                self._routes.clear()
            self._routes[key] = found
        return found

    def plan(self, instance: Any, kwargs: dict[str, Any]) -> Plan:
        """``instance`` is the call's positional arguments: LiteLLM's are module functions, ``model`` and
        ``messages`` (``input``) may come first."""
        args: tuple[Any, ...] = instance if isinstance(instance, tuple) else ()
        model = kwargs.get("model", args[0] if args else None)
        provider_name: str | None = None
        resolved = model if isinstance(model, str) else None
        if isinstance(model, str):
            resolved, provider_name = self.route(
                model, kwargs.get("custom_llm_provider"), kwargs.get("api_base") or kwargs.get("base_url")
            )
        provider = PROVIDERS.get(provider_name or "", provider_name or "litellm")
        stream = kwargs.get("stream") is True
        attributes: dict[str, AttributeValue] = {}
        if self.operation == semconv.OP_CHAT:
            attributes = request_numbers(kwargs, _NUMBERS)
            attributes[semconv.REQUEST_STREAM] = stream
            stops = stop_sequences(kwargs.get("stop"))
            if stops:
                attributes[semconv.REQUEST_STOP_SEQUENCES] = stops
            messages = kwargs.get("messages", args[1] if len(args) > 1 else None)
            if self.settings.capture_content and isinstance(messages, (list, tuple)):
                limit = self.settings.content_max_chars
                attributes[semconv.INPUT_MESSAGES] = to_json([chat_message(m, limit) for m in messages])
        key = kwargs.get("api_key")
        invocation = Invocation(
            operation=self.operation,
            provider=provider,
            request_model=resolved,
            stream=stream,
            request_attributes=attributes,
            secrets=(key,) if isinstance(key, str) and key else (),
        )
        if stream and self.settings.openai_stream_usage:
            options = kwargs.get("stream_options") or {}
            if isinstance(options, dict) and not options.get("include_usage"):
                send = {**kwargs, "stream_options": {**options, "include_usage": True}}
                return StreamUsagePlan(invocation, send, "", kwargs)
        return StreamUsagePlan(invocation, kwargs, "", None)

    def is_stream(self, result: Any) -> bool:
        return type(result).__name__ == "CustomStreamWrapper"

    def is_raw_response(self, result: Any) -> bool:
        return False

    def record_response(self, invocation: Invocation, response: Any) -> None:
        record_choices(invocation, response, self.settings)
        hidden = getattr(response, "_hidden_params", None) or {}
        invocation.answered(
            usage=litellm_usage(field(response, "usage")), attributes=_reported(hidden.get("response_cost"))
        )

    def stream_reader(self, invocation: Invocation, plan: Plan) -> StreamReader:
        hide = isinstance(plan, StreamUsagePlan) and plan.original_kwargs is not None
        return LiteLLMChunkReader(hide, self.settings)


class Completion(LiteLLMEndpoint):
    pass


class AsyncCompletion(LiteLLMEndpoint):
    stream_async = True


class Embedding(LiteLLMEndpoint):
    operation = semconv.OP_EMBEDDINGS

    def record_response(self, invocation: Invocation, response: Any) -> None:
        data = field(response, "data") or []
        vector = field(data[0], "embedding") if data else None
        attributes: dict[str, AttributeValue] = {}
        if isinstance(vector, list):
            attributes[semconv.EMBEDDINGS_DIMENSION_COUNT] = len(vector)
        hidden = getattr(response, "_hidden_params", None) or {}
        attributes.update(_reported(hidden.get("response_cost")))
        invocation.answered(
            model=field(response, "model"), usage=embeddings_usage(field(response, "usage")), attributes=attributes
        )


class LiteLLMChunkReader(ChunkStreamReader):
    """OpenAI-shaped chunks; the usage read with LiteLLM's names, its ``cost`` kept as reported only."""

    __slots__ = ()

    def finish(self, invocation: Invocation) -> None:
        usage = self.usage
        self.usage = None
        super().finish(invocation)
        invocation.answered(usage=litellm_usage(usage), attributes=_reported(field(usage, "cost")))


FUNCTIONS: dict[str, tuple[type[LiteLLMEndpoint], bool]] = {
    "completion": (Completion, False),
    "acompletion": (AsyncCompletion, True),
    "embedding": (Embedding, False),
    "aembedding": (Embedding, True),
}
"""The ``litellm`` module's functions wrapped, their endpoint, and whether they are coroutines."""
