"""The provider behind an OpenAI-compatible base URL."""

from __future__ import annotations

import openai
import pytest

from aimon_otel.instrumentation.providers.detect import detect_server
from aimon_otel.testing import FakeProvider
from tests.conftest import API_KEY, MESSAGES, Telemetry


@pytest.mark.parametrize(
    ("base_url", "provider", "address", "port"),
    [
        ("https://api.openai.com/v1", "openai", "api.openai.com", 443),
        ("https://my-res.openai.azure.com/openai/deployments/gpt4o", "azure.ai.openai", "my-res.openai.azure.com", 443),
        (
            "https://my-res.cognitiveservices.azure.com/openai/v1",
            "azure.ai.openai",
            "my-res.cognitiveservices.azure.com",
            443,
        ),
        ("https://openrouter.ai/api/v1", "openrouter", "openrouter.ai", 443),
        ("https://api.perplexity.ai", "perplexity", "api.perplexity.ai", 443),
        ("https://api.groq.com/openai/v1", "groq", "api.groq.com", 443),
        ("https://api.deepseek.com/v1", "deepseek", "api.deepseek.com", 443),
        ("https://api.x.ai/v1", "x_ai", "api.x.ai", 443),
        ("https://api.mistral.ai/v1", "mistral_ai", "api.mistral.ai", 443),
        ("https://api.together.xyz/v1", "together", "api.together.xyz", 443),
        ("https://api.fireworks.ai/inference/v1", "fireworks", "api.fireworks.ai", 443),
        (
            "https://generativelanguage.googleapis.com/v1beta/openai/",
            "gcp.gemini",
            "generativelanguage.googleapis.com",
            443,
        ),
        ("http://localhost:11434/v1", "ollama", "localhost", 11434),
        ("http://gpu-box.internal:8000/v1", "openai", "gpu-box.internal", 8000),
        # lookalikes are not the provider: a match is the host itself or a subdomain of it
        ("https://notopenrouter.ai/api/v1", "openai", "notopenrouter.ai", 443),
        ("https://eu.openrouter.ai/api/v1", "openrouter", "eu.openrouter.ai", 443),
        ("https://evilapi.openai.com/v1", "openai", "evilapi.openai.com", 443),
        ("https://fakeopenai.azure.com/v1", "openai", "fakeopenai.azure.com", 443),
        ("https://myapi.deepseek.com.attacker.net/v1", "openai", "myapi.deepseek.com.attacker.net", 443),
        ("https://x-api.groq.com/openai/v1", "openai", "x-api.groq.com", 443),
    ],
)
def test_detect_server(base_url: str, provider: str, address: str, port: int) -> None:
    assert detect_server(base_url) == (provider, address, port)


def test_lookalike_host_is_not_trusted() -> None:
    assert detect_server("https://api.openai.com.evil.example/v1").provider == "openai"
    assert detect_server("https://notopenrouter.ai/v1").address == "notopenrouter.ai"
    assert detect_server("https://xapi.x.ai.example/v1").provider == "openai"


def test_azure_client_is_azure_whatever_the_host(telemetry: Telemetry, fake: FakeProvider) -> None:
    client = openai.AzureOpenAI(
        azure_endpoint=fake.base_url,
        azure_deployment="prod-gpt4o",
        api_key=API_KEY,
        api_version="2024-10-21",
        max_retries=0,
    )
    client.chat.completions.create(model="prod-gpt4o", messages=MESSAGES)
    span = telemetry.span()
    assert span.attributes["gen_ai.provider.name"] == "azure.ai.openai"
    assert span.attributes["gen_ai.request.model"] == "prod-gpt4o"


def test_reassigned_base_url_is_seen(telemetry: Telemetry, fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    client.base_url = f"http://localhost:{fake.port}/v1"  # the SDK allows it; the cached text must follow
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert [s.attributes["server.address"] for s in telemetry.spans()] == ["127.0.0.1", "localhost"]
