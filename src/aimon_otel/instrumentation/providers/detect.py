"""Which GenAI provider an OpenAI-compatible client talks to, from its base URL.

Many providers speak the OpenAI API; users point the ``openai`` SDK at them with
``base_url``. Prices and dashboards need the real provider, so we read it off the host.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import urlsplit

# (host, gen_ai.provider.name): the host itself or any subdomain of it; first match wins.
# ``notopenrouter.ai`` is not ``openrouter.ai``: a match is exact or at a dot boundary.
_HOSTS: tuple[tuple[str, str], ...] = (
    ("api.openai.com", "openai"),
    ("openai.azure.com", "azure.ai.openai"),
    ("cognitiveservices.azure.com", "azure.ai.openai"),
    ("services.ai.azure.com", "azure.ai.openai"),
    ("openrouter.ai", "openrouter"),
    ("api.perplexity.ai", "perplexity"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.x.ai", "x_ai"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.together.xyz", "together"),
    ("api.together.ai", "together"),
    ("api.fireworks.ai", "fireworks"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("api.anthropic.com", "anthropic"),
    ("api.cohere.com", "cohere"),
    ("api.cohere.ai", "cohere"),
)
OLLAMA_PORT = 11434
KNOWN_PROVIDERS: frozenset[str] = frozenset(
    [provider for _, provider in _HOSTS] + ["ollama", "aws.bedrock", "gcp.vertex_ai", "cohere"]
)
"""Every ``gen_ai.provider.name`` aimon-otel reports (budgets files are checked against it)."""


class Server(NamedTuple):
    provider: str
    address: str | None
    port: int | None


@lru_cache(maxsize=256)
def detect_server(base_url: str, default_provider: str = "openai") -> Server:
    """The provider, host and port of a client's base URL.

    Unknown hosts keep ``default_provider`` (the SDK's own) and are told apart by
    ``server.address``.
    """
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" else 80 if parts.scheme == "http" else None
    provider = default_provider
    for known, name in _HOSTS:
        if host == known or host.endswith("." + known):
            provider = name
            break
    else:
        if port == OLLAMA_PORT or host == "ollama" or host.startswith("ollama."):
            provider = "ollama"
    return Server(provider, host or None, port)


_url_texts: dict[int, tuple[Any, str]] = {}


def base_url_of(client: Any) -> str:
    """``str(client.base_url)``, remembered per URL object: the SDK's property and httpx's ``str()``
    cost a few microseconds a call, and a client's URL object only changes when reassigned."""
    url = getattr(client, "_base_url", None)
    if url is None:
        return str(client.base_url)
    known = _url_texts.get(id(url))
    if known is not None and known[0] is url:
        return known[1]
    text = str(client.base_url)
    if len(_url_texts) > 256:
        _url_texts.clear()
    _url_texts[id(url)] = (url, text)
    return text
