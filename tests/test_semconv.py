"""Our own GenAI names agree with opentelemetry-semantic-conventions wherever the installed package has them."""

from __future__ import annotations

import importlib

import pytest

from aimon_otel import semconv

# our constant -> (module of the conventions package, its constant)
KEPT_LOCALLY = {
    "PROVIDER_NAME": ("attributes.gen_ai_attributes", "GEN_AI_PROVIDER_NAME"),
    "REQUEST_STREAM": ("attributes.gen_ai_attributes", "GEN_AI_REQUEST_STREAM"),
    "RESPONSE_TIME_TO_FIRST_CHUNK": ("attributes.gen_ai_attributes", "GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK"),
    "USAGE_CACHE_READ_INPUT_TOKENS": ("attributes.gen_ai_attributes", "GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS"),
    "USAGE_CACHE_CREATION_INPUT_TOKENS": ("attributes.gen_ai_attributes", "GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS"),
    "USAGE_REASONING_OUTPUT_TOKENS": ("attributes.gen_ai_attributes", "GEN_AI_USAGE_REASONING_OUTPUT_TOKENS"),
    "INPUT_MESSAGES": ("attributes.gen_ai_attributes", "GEN_AI_INPUT_MESSAGES"),
    "OUTPUT_MESSAGES": ("attributes.gen_ai_attributes", "GEN_AI_OUTPUT_MESSAGES"),
    "SYSTEM_INSTRUCTIONS": ("attributes.gen_ai_attributes", "GEN_AI_SYSTEM_INSTRUCTIONS"),
    "EMBEDDINGS_DIMENSION_COUNT": ("attributes.gen_ai_attributes", "GEN_AI_EMBEDDINGS_DIMENSION_COUNT"),
    "REQUEST_SERVICE_TIER": ("attributes.openai_attributes", "OPENAI_REQUEST_SERVICE_TIER"),
    "RESPONSE_SERVICE_TIER": ("attributes.openai_attributes", "OPENAI_RESPONSE_SERVICE_TIER"),
    "RESPONSE_SYSTEM_FINGERPRINT": ("attributes.openai_attributes", "OPENAI_RESPONSE_SYSTEM_FINGERPRINT"),
    "METRIC_TIME_TO_FIRST_CHUNK": ("metrics.gen_ai_metrics", "GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK"),
}


@pytest.mark.parametrize("name", sorted(KEPT_LOCALLY))
def test_local_names_match_the_conventions_package(name: str) -> None:
    module_name, constant = KEPT_LOCALLY[name]
    try:
        module = importlib.import_module(f"opentelemetry.semconv._incubating.{module_name}")
    except ImportError:
        pytest.skip(f"this opentelemetry-semantic-conventions has no {module_name}")
    if not hasattr(module, constant):
        pytest.skip(f"this opentelemetry-semantic-conventions has no {constant} yet")
    assert getattr(semconv, name) == getattr(module, constant)


def test_no_deprecated_names_are_emitted() -> None:
    values = {value for name, value in vars(semconv).items() if name.isupper() and isinstance(value, str)}
    assert not {v for v in values if v.startswith("gen_ai.openai.") or v in ("gen_ai.system", "gen_ai.prompt")}
