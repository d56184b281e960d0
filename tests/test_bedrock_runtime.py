"""boto3's ``bedrock-runtime`` end to end: the real botocore client (SigV4, REST-JSON, the AWS event-stream
decoder) over real HTTP against the fake provider's Bedrock routes.

Each operation is called with instrumentation off and on and the app's objects compared; tokens are
the wire's, costs genai-prices' own ``calc_price`` for the ``aws`` entry of the model id as sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
import wrapt
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

import aimon_otel
from aimon_otel import BudgetExceeded
from aimon_otel.instrumentation.providers.bedrock import base_model, family
from aimon_otel.testing import FakeProvider, anthropic_wire
from aimon_otel.testing import bedrock_wire as wire
from aimon_otel.testing.openai_wire import SCENARIO_HEADER
from tests.conftest import Telemetry, make_telemetry

pytest.importorskip("botocore")
HAS_CONVERSE = hasattr(boto3.client("bedrock-runtime", region_name="us-east-1"), "converse")
needs_converse = pytest.mark.skipif(not HAS_CONVERSE, reason="botocore < 1.34.116 has no Converse")
MESSAGES = [{"role": "user", "content": [{"text": "Say hello"}]}]
CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


def _usage_fields() -> set[str]:
    import botocore.session

    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    return set(model.shape_for("TokenUsage").members) if HAS_CONVERSE else set()


PARSES_CACHE = "cacheReadInputTokens" in _usage_fields()
"""botocore before the cache fields were added to Converse's ``TokenUsage`` drops them from the response the
app gets: the cached tokens are then unknown to the app and to us alike (upgrade boto3 to count them)."""
CONVERSE_USAGE = (
    PriceUsage(
        input_tokens=wire.CONVERSE_INPUT + wire.CONVERSE_CACHE_READ + wire.CONVERSE_CACHE_WRITE,
        cache_read_tokens=wire.CONVERSE_CACHE_READ,
        cache_write_tokens=wire.CONVERSE_CACHE_WRITE,
        cache_write_5m_tokens=wire.CONVERSE_CACHE_WRITE_5M if "cacheDetails" in _usage_fields() else None,
        cache_write_1h_tokens=wire.CONVERSE_CACHE_WRITE_1H if "cacheDetails" in _usage_fields() else None,
        output_tokens=wire.CONVERSE_OUTPUT,
    )
    if PARSES_CACHE
    else PriceUsage(input_tokens=wire.CONVERSE_INPUT, output_tokens=wire.CONVERSE_OUTPUT)
)
INVOKE_USAGE = PriceUsage(input_tokens=wire.INVOKE_INPUT, output_tokens=wire.INVOKE_OUTPUT)
FAMILIES = {
    # model id as sent -> (request body, priced by genai-prices?)
    "meta.llama3-1-8b-instruct-v1:0": ({"prompt": "Say hello", "max_gen_len": 64}, True),
    "us.amazon.nova-pro-v1:0": (
        {"schemaVersion": "messages-v1", "messages": MESSAGES, "inferenceConfig": {"maxTokens": 64}},
        True,
    ),
    "amazon.titan-text-express-v1": ({"inputText": "Say hello", "textGenerationConfig": {"maxTokenCount": 64}}, True),
    "mistral.mistral-large-2402-v1:0": ({"prompt": "<s>[INST] Say hello [/INST]", "max_tokens": 64}, True),
    "cohere.command-r-plus-v1:0": ({"message": "Say hello", "max_tokens": 64}, False),
    "ai21.jamba-1-5-large-v1:0": ({"messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 64}, False),
}


def bedrock_client(fake: FakeProvider, scenario: str | None = None) -> Any:
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=fake.base_url,
        aws_access_key_id="AKIAFAKEFAKEFAKE",
        aws_secret_access_key="fake-secret",
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )
    if scenario is not None:

        def add_scenario(request: Any, **_: Any) -> None:
            request.headers[SCENARIO_HEADER] = scenario

        client.meta.events.register("before-send.bedrock-runtime.*", add_scenario)
    return client


def plain(response: dict[str, Any]) -> dict[str, Any]:
    """A response without its per-request metadata (request id, date)."""
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


def both_ways(fake: FakeProvider, call: Callable[[Any], Any]) -> tuple[Any, Any, Telemetry]:
    """``call(client)`` without instrumentation, then with it (a client made after ``instrument()``)."""
    bare = call(bedrock_client(fake))
    telemetry = make_telemetry()
    try:
        instrumented = call(bedrock_client(fake))
    finally:
        telemetry.instrumentor.uninstrument()
    return bare, instrumented, telemetry


def attributes_of(telemetry: Telemetry) -> dict[str, Any]:
    return dict(telemetry.span().attributes or {})


def cost_of(model: str, usage: PriceUsage) -> float:
    return float(
        calc_price(usage, base_model(model) if model.startswith("arn:") else model, provider_id="aws").total_price
    )


@needs_converse
def test_converse_is_priced_with_its_cache_counts(fake: FakeProvider) -> None:
    bare, instrumented, telemetry = both_ways(
        fake, lambda client: client.converse(modelId=CLAUDE, messages=MESSAGES, inferenceConfig={"maxTokens": 64})
    )
    assert plain(instrumented) == plain(bare)
    attributes = attributes_of(telemetry)
    assert attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert attributes["gen_ai.request.model"] == CLAUDE
    assert attributes["gen_ai.request.max_tokens"] == 64
    assert (attributes["server.address"], attributes["server.port"]) == ("127.0.0.1", fake.port)
    assert attributes["gen_ai.usage.input_tokens"] == CONVERSE_USAGE.input_tokens
    assert attributes["gen_ai.usage.output_tokens"] == wire.CONVERSE_OUTPUT
    if PARSES_CACHE:
        assert CONVERSE_USAGE.input_tokens == 180
        assert attributes["gen_ai.usage.cache_read.input_tokens"] == wire.CONVERSE_CACHE_READ
        assert attributes["gen_ai.usage.cache_creation.input_tokens"] == wire.CONVERSE_CACHE_WRITE
    assert attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert attributes["gen_ai.usage.cost"] == pytest.approx(cost_of(CLAUDE, CONVERSE_USAGE), abs=1e-9)
    assert attributes["aimon.pricing.status"] == "priced"
    assert "aimon.api_key.id" not in attributes  # SigV4: no API key to fingerprint


@needs_converse
def test_converse_stream_yields_the_same_events_and_ends_once(fake: FakeProvider) -> None:
    def call(client: Any) -> list[Any]:
        response = client.converse_stream(modelId="us.amazon.nova-pro-v1:0", messages=MESSAGES)
        return list(response["stream"])

    bare, instrumented, telemetry = both_ways(fake, call)
    assert instrumented == bare and bare[-1]["metadata"]["usage"]["inputTokens"] == wire.CONVERSE_INPUT
    attributes = attributes_of(telemetry)
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["aimon.stream.outcome"] == "completed"
    assert attributes["gen_ai.usage.input_tokens"] == CONVERSE_USAGE.input_tokens
    assert attributes["gen_ai.usage.output_tokens"] == wire.CONVERSE_OUTPUT
    expected = cost_of("us.amazon.nova-pro-v1:0", CONVERSE_USAGE)
    assert attributes["gen_ai.usage.cost"] == pytest.approx(expected, abs=1e-9)


@needs_converse
def test_a_stream_left_early_ends_its_span_once(fake: FakeProvider, telemetry: Telemetry) -> None:
    response = bedrock_client(fake).converse_stream(modelId="us.amazon.nova-pro-v1:0", messages=MESSAGES)
    stream = response["stream"]
    for event in stream:
        if "contentBlockDelta" in event:
            break
    assert telemetry.spans() == []
    stream.close()
    stream.close()
    assert attributes_of(telemetry)["aimon.stream.outcome"] == "closed"


@pytest.mark.parametrize("model", list(FAMILIES))
def test_invoke_model_reads_each_familys_body_and_the_app_reads_it_too(fake: FakeProvider, model: str) -> None:
    body, priced = FAMILIES[model]

    def call(client: Any) -> tuple[bytes, dict[str, Any]]:
        response = client.invoke_model(modelId=model, body=json.dumps(body))
        return response["body"].read(), plain({**response, "body": None})

    (bare_body, bare), (body_read, instrumented), telemetry = both_ways(fake, call)
    assert body_read == bare_body and instrumented == bare
    attributes = attributes_of(telemetry)
    assert attributes["gen_ai.usage.input_tokens"] == wire.INVOKE_INPUT
    assert attributes["gen_ai.usage.output_tokens"] == wire.INVOKE_OUTPUT
    assert attributes["gen_ai.request.max_tokens"] == 64
    if priced:
        assert attributes["gen_ai.usage.cost"] == pytest.approx(cost_of(model, INVOKE_USAGE), abs=1e-9)
    else:  # genai-prices has no aws price for it: unpriced, never $0
        assert "gen_ai.usage.cost" not in attributes and attributes["aimon.pricing.status"] == "unknown_model"


def test_invoke_model_of_claude_reads_the_messages_usage_with_its_cache_writes(fake: FakeProvider) -> None:
    model = "anthropic.claude-haiku-4-5-20251001-v1:0"
    request = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    }

    def call(client: Any) -> bytes:
        data: bytes = client.invoke_model(modelId=model, body=json.dumps(request).encode())["body"].read()
        return data

    bare, instrumented, telemetry = both_ways(fake, call)
    assert instrumented == bare
    attributes = attributes_of(telemetry)
    usage = PriceUsage(
        input_tokens=anthropic_wire.INPUT_TOKENS + anthropic_wire.CACHE_READ_TOKENS + anthropic_wire.CACHE_WRITE_TOKENS,
        cache_read_tokens=anthropic_wire.CACHE_READ_TOKENS,
        cache_write_tokens=anthropic_wire.CACHE_WRITE_TOKENS,
        cache_write_5m_tokens=anthropic_wire.CACHE_WRITE_5M_TOKENS,
        cache_write_1h_tokens=anthropic_wire.CACHE_WRITE_1H_TOKENS,
        output_tokens=anthropic_wire.OUTPUT_TOKENS,
    )
    assert attributes["gen_ai.usage.input_tokens"] == usage.input_tokens
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == anthropic_wire.CACHE_WRITE_TOKENS
    assert attributes["gen_ai.usage.cost"] == pytest.approx(cost_of(model, usage), abs=1e-9)


@pytest.mark.parametrize("model", [*FAMILIES, "anthropic.claude-haiku-4-5-20251001-v1:0"])
def test_invoke_model_streams_yield_the_same_chunks(fake: FakeProvider, model: str) -> None:
    body = FAMILIES.get(model, ({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": []}, True))[0]

    def call(client: Any) -> list[Any]:
        return list(client.invoke_model_with_response_stream(modelId=model, body=json.dumps(body))["body"])

    bare, instrumented, telemetry = both_ways(fake, call)
    assert instrumented == bare
    attributes = attributes_of(telemetry)
    assert attributes["aimon.stream.outcome"] == "completed"
    if model.startswith("anthropic."):
        assert attributes["gen_ai.usage.output_tokens"] == anthropic_wire.OUTPUT_TOKENS
    else:  # the family's own counts, else the last chunk's invocation metrics
        assert attributes["gen_ai.usage.input_tokens"] == wire.INVOKE_INPUT
        assert attributes["gen_ai.usage.output_tokens"] == wire.INVOKE_OUTPUT


def test_embeddings_are_an_embeddings_operation(fake: FakeProvider, telemetry: Telemetry) -> None:
    model = "amazon.titan-embed-text-v2:0"
    response = bedrock_client(fake).invoke_model(modelId=model, body=json.dumps({"inputText": "hi"}))
    assert len(json.loads(response["body"].read())["embedding"]) == 8
    attributes = attributes_of(telemetry)
    assert attributes["gen_ai.operation.name"] == "embeddings"
    assert attributes["gen_ai.embeddings.dimension.count"] == 8
    assert attributes["gen_ai.usage.input_tokens"] == wire.EMBED_INPUT
    usage = PriceUsage(input_tokens=wire.EMBED_INPUT, output_tokens=0)
    assert attributes["gen_ai.usage.cost"] == pytest.approx(cost_of(model, usage), abs=1e-12)


@needs_converse
@pytest.mark.parametrize(
    ("scenario", "code", "status"),
    [("aws-throttled", "ThrottlingException", 429), ("aws-denied", "AccessDeniedException", 403)],
)
def test_errors_are_raised_as_before_with_the_apis_code(
    fake: FakeProvider, scenario: str, code: str, status: int
) -> None:
    def call(client: Any) -> botocore.exceptions.ClientError:
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            client.converse(modelId=CLAUDE, messages=MESSAGES)
        return raised.value

    bare = call(bedrock_client(fake, scenario))
    telemetry = make_telemetry()
    try:
        instrumented = call(bedrock_client(fake, scenario))
    finally:
        telemetry.instrumentor.uninstrument()
    assert type(instrumented).__name__ == type(bare).__name__ == code
    assert str(instrumented) == str(bare)
    assert instrumented.response["ResponseMetadata"]["HTTPStatusCode"] == status
    attributes = attributes_of(telemetry)
    assert attributes["error.type"] == code
    assert "fake-secret" not in json.dumps(attributes)


@needs_converse
def test_a_guardrail_intervention_is_a_failed_call_whose_tokens_still_count(fake: FakeProvider) -> None:
    bare, instrumented, telemetry = both_ways(
        fake, lambda client: bedrock_client(fake, "guardrail").converse(modelId=CLAUDE, messages=MESSAGES)
    )
    assert plain(instrumented) == plain(bare) and bare["stopReason"] == "guardrail_intervened"
    attributes = attributes_of(telemetry)
    assert attributes["error.type"] == "guardrail_intervened"
    assert attributes["gen_ai.usage.cost"] == pytest.approx(cost_of(CLAUDE, CONVERSE_USAGE), abs=1e-9)


@needs_converse
@pytest.mark.parametrize(
    ("model", "priced_as"),
    [
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        ("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4", None),
        ("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/p1x2y3", None),
    ],
)
def test_model_ids_in_every_form_bedrock_takes(
    fake: FakeProvider, telemetry: Telemetry, model: str, priced_as: str | None
) -> None:
    bedrock_client(fake).converse(modelId=model, messages=MESSAGES)
    attributes = attributes_of(telemetry)
    assert attributes["gen_ai.request.model"] == model
    if priced_as is None:
        assert attributes["aimon.pricing.status"] == "unknown_model" and "gen_ai.usage.cost" not in attributes
    else:
        expected = float(calc_price(CONVERSE_USAGE, priced_as, provider_id="aws").total_price)
        assert attributes["gen_ai.usage.cost"] == pytest.approx(expected, abs=1e-9)


@needs_converse
def test_an_override_file_prices_an_application_inference_profile(fake: FakeProvider, tmp_path: Path) -> None:
    model = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4"
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        f"models:\n  - model: '{model}'\n    provider: aws.bedrock\n"
        "    prices: [{input_mtok: 3, output_mtok: 15, cache_read_mtok: 0.3, cache_write_mtok: 3.75}]\n"
    )
    telemetry = make_telemetry(pricing_file=str(prices))
    try:
        bedrock_client(fake).converse(modelId=model, messages=MESSAGES)
    finally:
        telemetry.instrumentor.uninstrument()
    # 120 uncached at $3, 40 cache reads at $0.30, 20 cache writes at $3.75, 30 output at $15 per million
    expected = (120 * 3 + 40 * 0.3 + 20 * 3.75 + 30 * 15) / 1e6 if PARSES_CACHE else (120 * 3 + 30 * 15) / 1e6
    assert attributes_of(telemetry)["gen_ai.usage.cost"] == pytest.approx(expected, abs=1e-12)


@needs_converse
def test_a_block_budget_refuses_a_bedrock_call_before_anything_is_sent(fake: FakeProvider, tmp_path: Path) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "budgets:\n  - {name: cut-off, match: {tenant_id: acme}, limit_usd: 0, period: month, action: block}\n"
    )
    telemetry = make_telemetry(budgets=str(budgets))
    try:
        client = bedrock_client(fake)
        sent = len(fake.requests)
        with aimon_otel.attributes(tenant_id="acme"), pytest.raises(BudgetExceeded):
            client.converse(modelId=CLAUDE, messages=MESSAGES)
        with aimon_otel.attributes(tenant_id="acme"), pytest.raises(BudgetExceeded):
            client.invoke_model_with_response_stream(modelId="meta.llama3-1-8b-instruct-v1:0", body=b"{}")
        assert len(fake.requests) == sent
        with aimon_otel.attributes(tenant_id="globex"):
            client.converse(modelId=CLAUDE, messages=MESSAGES)
        assert len(fake.requests) == sent + 1
    finally:
        telemetry.instrumentor.uninstrument()
    refused = [s for s in telemetry.spans() if (s.attributes or {}).get("error.type") == "aimon.budget_exceeded"]
    assert len(refused) == 2


def test_only_bedrock_runtime_clients_are_touched_and_uninstrument_restores_them(fake: FakeProvider) -> None:
    telemetry = make_telemetry()
    try:
        s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="AKIAFAKE", aws_secret_access_key="x")
        runtime = bedrock_client(fake)
        assert not any(isinstance(value, wrapt.FunctionWrapper) for value in type(s3).__dict__.values())
        assert isinstance(type(runtime).__dict__["invoke_model"], wrapt.FunctionWrapper)
    finally:
        telemetry.instrumentor.uninstrument()
    assert not isinstance(type(runtime).__dict__["invoke_model"], wrapt.FunctionWrapper)
    runtime.invoke_model(modelId="meta.llama3-1-8b-instruct-v1:0", body=b"{}")
    assert telemetry.spans() == []
    again = make_telemetry()  # a client made under an earlier instrument() is covered again
    try:
        runtime.invoke_model(modelId="meta.llama3-1-8b-instruct-v1:0", body=b"{}")
    finally:
        again.instrumentor.uninstrument()
    assert again.span().attributes["gen_ai.usage.input_tokens"] == wire.INVOKE_INPUT  # type: ignore[index]


def test_a_file_body_is_sent_unread_and_the_app_gets_a_streaming_body(fake: FakeProvider, telemetry: Telemetry) -> None:
    import io

    import botocore.response

    request = io.BytesIO(json.dumps({"prompt": "Say hello", "max_gen_len": 64}).encode())
    response = bedrock_client(fake).invoke_model(modelId="meta.llama3-1-8b-instruct-v1:0", body=request)
    assert isinstance(response["body"], botocore.response.StreamingBody)
    assert next(response["body"].iter_lines()).startswith(b'{"generation"')
    attributes = attributes_of(telemetry)
    assert "gen_ai.request.max_tokens" not in attributes  # a file is not read by us before it is sent
    assert attributes["gen_ai.usage.output_tokens"] == wire.INVOKE_OUTPUT
    assert fake.requests[-1].body["max_gen_len"] == 64  # and the app's file was sent whole


@needs_converse
def test_converse_content_is_captured_only_when_asked(fake: FakeProvider) -> None:
    for capture in (False, True):
        telemetry = make_telemetry(capture_content=capture)
        try:
            bedrock_client(fake).converse(
                modelId=CLAUDE, messages=MESSAGES, system=[{"text": "Be brief."}], inferenceConfig={"maxTokens": 64}
            )
        finally:
            telemetry.instrumentor.uninstrument()
        attributes = attributes_of(telemetry)
        if not capture:
            assert not {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"} & set(
                attributes
            )
            continue
        assert json.loads(str(attributes["gen_ai.input.messages"])) == [
            {"role": "user", "parts": [{"type": "text", "content": "Say hello"}]}
        ]
        assert "Be brief." in str(attributes["gen_ai.system_instructions"])
        assert wire.REPLY in str(attributes["gen_ai.output.messages"])


@pytest.mark.parametrize(
    ("model", "kind", "base"),
    [
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("apac.amazon.nova-lite-v1:0", "nova", "amazon.nova-lite-v1:0"),
        ("us-gov.meta.llama3-8b-instruct-v1:0", "meta", "meta.llama3-8b-instruct-v1:0"),
        (
            "arn:aws:bedrock:us-west-2::foundation-model/amazon.titan-embed-text-v2:0",
            "titan-embed",
            "amazon.titan-embed-text-v2:0",
        ),
        ("cohere.embed-english-v3", "cohere-embed", "cohere.embed-english-v3"),
        ("arn:aws:bedrock:us-east-1:1:custom-model/imported/abc", "unknown", "abc"),
    ],
)
def test_model_families(model: str, kind: str, base: str) -> None:
    assert (family(model), base_model(model)) == (kind, base)


@pytest.mark.parametrize("model", [*FAMILIES, "anthropic.claude-haiku-4-5-20251001-v1:0"])
def test_invoke_model_content_is_captured_only_when_asked(fake: FakeProvider, model: str) -> None:
    anthropic_body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": MESSAGES}
    body = FAMILIES.get(model, (anthropic_body, True))[0]
    for capture in (False, True):
        telemetry = make_telemetry(capture_content=capture)
        try:
            bedrock_client(fake).invoke_model(modelId=model, body=json.dumps(body))["body"].read()
        finally:
            telemetry.instrumentor.uninstrument()
        attributes = attributes_of(telemetry)
        if not capture:
            assert not {"gen_ai.input.messages", "gen_ai.output.messages"} & set(attributes)
            continue
        assert "Say hello" in str(attributes["gen_ai.input.messages"])
        reply = anthropic_wire.REPLY_TEXT if model.startswith("anthropic.") else wire.REPLY
        assert reply in str(attributes["gen_ai.output.messages"])
