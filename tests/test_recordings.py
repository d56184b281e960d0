"""Real provider responses (``tests/recordings/``) replayed through the real SDKs over HTTP.

Each recording names its source. The fake provider answers a request carrying the
``x-fake-replay`` header with the recorded body (JSON, SSE, or Bedrock's event stream).
Clients that must look like a real host (OpenRouter, DeepSeek...) keep that base URL, and an
httpx transport sends their requests to the loopback server instead, so provider detection
sees the real host. Checks, as for the fake provider's own answers: the app gets the same
objects with and without instrumentation; exact tokens; the cost equals genai-prices' own
``calc_price`` (summed over model passes) to 1e-9 USD, or the status says why there is none.
"""

from __future__ import annotations

import base64
import functools
import importlib
import json
import os
import types
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from aimon_otel.testing import FakeProvider
from aimon_otel.testing.anthropic_wire import as_event_stream
from aimon_otel.testing.fake_provider import REPLAY_HEADER
from aimon_otel.testing.openai_wire import WireResponse
from tests.conftest import API_KEY, OPENAI_HAS_RESPONSES, make_telemetry

# openai 3.x uses the httpx2 fork, older releases httpx: take whichever the installed SDK's client is built on.
httpx_module = importlib.import_module(openai.DefaultHttpxClient.__bases__[0].__module__.split(".")[0])

RECORDINGS = sorted((Path(__file__).parent / "recordings").glob("*.json"))
HAS_SDK_TRACING = hasattr(anthropic, "_tracing")
"""anthropic 2.x traces its own calls (on by default under ``opentelemetry-instrument``)."""
CASES = [pytest.param(path, False, id=path.stem) for path in RECORDINGS] + [
    pytest.param(
        path,
        True,
        id=f"{path.stem}-sdk-tracing",
        marks=pytest.mark.skipif(not HAS_SDK_TRACING, reason="anthropic < 2 does not trace itself"),
    )
    for path in RECORDINGS
    if json.loads(path.read_text())["client"] in ("anthropic", "bedrock")
]
"""Every recording; the Anthropic ones (first-party and Bedrock) again with the SDK's own tracing on:
its span is then the call's span, and must carry our figures, not the SDK's top-level usage."""
TOKEN_ATTRIBUTES = {
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
    "cache_read": "gen_ai.usage.cache_read.input_tokens",
    "cache_write": "gen_ai.usage.cache_creation.input_tokens",
    "reasoning": "gen_ai.usage.reasoning.output_tokens",
}


def load(path: Path) -> dict[str, Any]:
    recording: dict[str, Any] = json.loads(path.read_text())
    assert recording.get("source"), f"{path.name}: every recording names its source"
    return recording


def wire_response(recording: dict[str, Any]) -> WireResponse:
    response = recording["response"]
    headers = dict(response.get("headers", {}))
    if "json" in response:
        return WireResponse(response["status"], json.dumps(response["json"]).encode(), headers=headers)
    if "eventstream_base64" in response:  # an AWS event stream as received, byte for byte
        return WireResponse(
            response["status"],
            base64.b64decode(response["eventstream_base64"]),
            headers=headers,
            media_type="application/vnd.amazon.eventstream",
        )
    frames = [_sse_frame(event) for event in response["sse"]]
    if recording["client"] == "bedrock":
        return WireResponse(
            response["status"], events=as_event_stream(iter(frames)), media_type="application/vnd.amazon.eventstream"
        )
    return WireResponse(response["status"], events=iter(frames))


def _sse_frame(event: Any) -> bytes:
    if isinstance(event, str):
        return f"data: {event}\n\n".encode()
    if "event" in event and "data" in event:
        return f"event: {event['event']}\ndata: {json.dumps(event['data'])}\n\n".encode()
    return f"data: {json.dumps(event)}\n\n".encode()


class ToLoopback(httpx_module.HTTPTransport):  # type: ignore[misc]
    """Sends every request to the fake provider, whatever host the client was given."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def handle_request(self, request: Any) -> Any:
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port)
        return super().handle_request(request)


def make_client(recording: dict[str, Any], fake: FakeProvider, name: str, sdk_tracing: Any = False) -> Any:
    """The recording's client; ``sdk_tracing`` is anthropic 2.x's own ``open_telemetry`` option (False: off)."""
    headers = {REPLAY_HEADER: name}
    kind = recording["client"]
    if kind == "openai":
        base_url = recording.get("base_url")
        http_client = httpx_module.Client(transport=ToLoopback(fake.port)) if base_url else None
        return openai.OpenAI(
            base_url=base_url or fake.openai_base_url,
            api_key=API_KEY,
            max_retries=0,
            default_headers=headers,
            http_client=http_client,
        )
    if kind == "azure":
        return openai.AzureOpenAI(
            azure_endpoint="https://contoso-eastus.openai.azure.com",
            api_key=API_KEY,
            api_version="2024-10-21",
            max_retries=0,
            default_headers=headers,
            http_client=httpx_module.Client(transport=ToLoopback(fake.port)),
        )
    no_native: dict[str, Any] = {"open_telemetry": sdk_tracing} if HAS_SDK_TRACING else {}
    if kind == "anthropic":
        return anthropic.Anthropic(
            base_url=fake.anthropic_base_url, api_key=API_KEY, max_retries=0, default_headers=headers, **no_native
        )
    if kind == "bedrock":
        pytest.importorskip("botocore")
        return anthropic.AnthropicBedrock(
            aws_region="us-east-1",
            aws_access_key="AKIAFAKEFAKEFAKE",
            aws_secret_key="fake-secret",
            base_url=fake.base_url,
            max_retries=0,
            default_headers=headers,
            **no_native,
        )
    if kind == "ollama":
        ollama = pytest.importorskip("ollama")
        return ollama.Client(host=fake.base_url, headers=headers)
    return _other_sdk_client(kind, fake, headers, recording.get("route", ""))


def _other_sdk_client(kind: str, fake: FakeProvider, headers: dict[str, str], route: str) -> Any:
    """The SDKs that are optional extras: skipped where not installed (the oldest set has no LiteLLM)."""
    if kind == "boto3":
        boto3 = pytest.importorskip("boto3")
        import botocore.config

        client = boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=fake.base_url,
            aws_access_key_id="AKIAFAKEFAKEFAKE",
            aws_secret_access_key="fake-secret",
            config=botocore.config.Config(retries={"max_attempts": 1}),
        )
        if not hasattr(client, "converse"):
            pytest.skip("botocore < 1.34.116 has no Converse")

        def add_replay_header(request: Any, **_: Any) -> None:
            for name, value in headers.items():
                request.headers[name] = value

        client.meta.events.register("before-sign.bedrock-runtime.*", add_replay_header)
        return client
    if kind == "groq":
        groq = pytest.importorskip("groq")
        return groq.Groq(api_key=API_KEY, base_url=fake.base_url, max_retries=0, default_headers=headers)
    if kind == "mistral":
        pytest.importorskip("mistralai")
        import httpx

        try:
            from mistralai.client import Mistral
        except ImportError:  # mistralai 1.x
            from mistralai import Mistral  # type: ignore[attr-defined,no-redef]
        return Mistral(api_key=API_KEY, server_url=f"{fake.base_url}/mistral", client=httpx.Client(headers=headers))
    if kind == "cohere":
        cohere = pytest.importorskip("cohere")
        import httpx

        return cohere.ClientV2(api_key=API_KEY, base_url=fake.base_url, httpx_client=httpx.Client(headers=headers))
    if kind == "litellm":
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network: LiteLLM's bundled cost map
        litellm = pytest.importorskip("litellm")
        routed = {"api_base": f"{fake.base_url}{route}", "api_key": API_KEY, "extra_headers": headers}
        return types.SimpleNamespace(completion=functools.partial(litellm.completion, **routed))
    raise AssertionError(f"unknown client kind {kind!r}")


def call(client: Any, recording: dict[str, Any]) -> Any:
    """Make the recorded call the way an app would; streams are read to the end. Returns what the app saw."""
    target = client
    for part in recording["method"].split("."):
        target = getattr(target, part)
    request = dict(recording["request"])
    if recording["method"].startswith("beta.") and "betas" in request and not _accepts(target, "betas"):
        request.pop("betas")
    if not _accepts(target, "context_management"):
        request.pop("context_management", None)
    try:
        result = target(**request)
        if request.get("stream"):
            return [_dump(item) for item in result]
        if recording["client"] == "boto3":
            return _boto_response(result)
    except Exception as error:  # an error answer: the app must get the same exception, instrumented or not
        if type(error).__name__ == "ParamValidationError":  # checked by botocore before anything is sent
            pytest.skip(f"this botocore does not know a parameter of the recorded request: {error}")
        if "raises" not in recording["expect"]:
            raise
        return {"raised": type(error).__name__, "message": str(error)}
    return _dump(result)


def _boto_response(result: dict[str, Any]) -> dict[str, Any]:
    """A boto3 response without its per-request metadata (date, request id); an event stream read to its end."""
    plain = {key: value for key, value in result.items() if key != "ResponseMetadata"}
    if "stream" in plain:
        plain["stream"] = list(plain["stream"])
    return plain


def _accepts(method: Any, name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return True


def _dump(item: Any) -> Any:
    return item.model_dump() if hasattr(item, "model_dump") else item


def expected_cost(expect: dict[str, Any], at: datetime) -> Decimal:
    return sum(
        (
            calc_price(
                PriceUsage(**part["usage"]), part["model"], provider_id=part["provider_id"], genai_request_timestamp=at
            ).total_price
            for part in expect["price"]
        ),
        Decimal(0),
    )


@pytest.mark.parametrize(("path", "sdk_tracing"), CASES)
def test_recording(path: Path, sdk_tracing: bool, fake: FakeProvider) -> None:
    recording = load(path)
    if recording.get("needs") == "responses" and not OPENAI_HAS_RESPONSES:
        pytest.skip("this openai SDK has no Responses API")
    name = path.stem
    fake.replays[name] = lambda: wire_response(recording)
    try:
        bare = call(make_client(recording, fake, name), recording)
        telemetry = make_telemetry()
        tracing = {"tracer_provider": telemetry.tracer_provider} if sdk_tracing else False
        try:
            seen = call(make_client(recording, fake, name, tracing), recording)
        finally:
            telemetry.instrumentor.uninstrument()
    finally:
        del fake.replays[name]
    assert seen == bare, "the app must see the same objects with instrumentation on"

    expect = recording["expect"]
    if "raises" in expect:
        assert isinstance(seen, dict) and seen.get("raised") == expect["raises"], seen
    span = telemetry.span()
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name.startswith("com.anthropic.sdk.python" if sdk_tracing else "aimon_otel")
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.provider.name"] == expect["provider"]
    if "response_model" in expect:  # None: the API's answer names no model (Converse, Cohere v2), nor does the span
        assert attributes.get("gen_ai.response.model") == expect["response_model"]
    if "response_id" in expect:
        assert attributes["gen_ai.response.id"] == expect["response_id"]
    for key, value in expect.get("attributes", {}).items():
        assert attributes[key] == (tuple(value) if isinstance(value, list) else value), key
    for key, value in expect.get("usage", {}).items():
        assert attributes.get(TOKEN_ATTRIBUTES[key], 0 if value == 0 else None) == value, key
    if sdk_tracing:  # the SDK's own name for the cache write carries our figure too
        cache_write = expect["usage"].get("cache_write", 0)
        assert attributes.get("gen_ai.usage.cache_write.input_tokens", 0) == cache_write

    if expect.get("status"):
        assert attributes["aimon.pricing.status"] == expect["status"]
        assert "gen_ai.usage.cost" not in attributes and "aimon.pricing.model" not in attributes
        return
    assert attributes["aimon.pricing.status"] == "priced"
    if "provider_cost" in expect:
        assert attributes["aimon.cost.source"] == "provider"
        assert attributes["gen_ai.usage.cost"] == expect["provider_cost"]
        return
    started = datetime.fromtimestamp((span.start_time or 0) / 1e9, UTC)
    assert attributes["gen_ai.usage.cost"] == pytest.approx(float(expected_cost(expect, started)), abs=1e-9)
    parts = sum(attributes.get(f"aimon.cost.{p}", 0.0) for p in ("input", "output", "cache_read", "cache_write"))
    parts += attributes.get("aimon.cost.requests", 0.0)
    assert parts == pytest.approx(attributes["gen_ai.usage.cost"], abs=1e-12)
    if "cost_requests" in expect:
        assert attributes["aimon.cost.requests"] == pytest.approx(expect["cost_requests"], abs=1e-12)
