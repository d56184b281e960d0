"""The anthropic SDK over real HTTP: one span per call (the SDK's own when it traces itself), metrics, costs.

Prices used (USD per million tokens, genai-prices 0.2.3's data from Anthropic's price page):
claude-haiku-4-5: input 1, cache read 0.10, cache write (5 minutes) 1.25, cache write (1 hour) 2, output 5.
The fake's usage: 100 uncached input, 200 cache read, 200 written for 5 minutes, 100 for 1 hour, 50 output.
"""

from __future__ import annotations

import gc
import importlib.util
import json
from decimal import Decimal
from typing import Any

import anthropic
import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
from opentelemetry.trace import StatusCode
from pydantic import BaseModel

from aimon_otel.testing import FakeProvider
from aimon_otel.testing import anthropic_wire as wire
from aimon_otel.testing.openai_wire import SCENARIO_HEADER
from tests.conftest import API_KEY, Telemetry, make_telemetry

MODEL = "claude-haiku-4-5"
MESSAGES = [{"role": "user", "content": "Say hello"}]
M = Decimal(1_000_000)
EXPECTED_COST = (
    100 * Decimal(1) + 200 * Decimal("0.10") + 200 * Decimal("1.25") + 100 * Decimal(2) + 50 * Decimal(5)
) / M
TOTAL_INPUT = wire.INPUT_TOKENS + wire.CACHE_READ_TOKENS + wire.CACHE_WRITE_TOKENS
HAS_NATIVE_TRACING = importlib.util.find_spec("anthropic._tracing") is not None
MODES = [
    "ours",
    pytest.param(
        "native", marks=pytest.mark.skipif(not HAS_NATIVE_TRACING, reason="anthropic < 2 does not trace itself")
    ),
]
NATIVE_SCOPE = "com.anthropic.sdk.python"


class Answer(BaseModel):
    answer: str


def client_kwargs(fake: FakeProvider, telemetry: Telemetry, mode: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"base_url": fake.anthropic_base_url, "api_key": API_KEY, "max_retries": 0}
    if HAS_NATIVE_TRACING:
        kwargs["open_telemetry"] = {"tracer_provider": telemetry.tracer_provider} if mode == "native" else False
    return kwargs


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(fake: FakeProvider, telemetry: Telemetry, mode: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(**client_kwargs(fake, telemetry, mode))


@pytest.fixture
def async_client(fake: FakeProvider, telemetry: Telemetry, mode: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(**client_kwargs(fake, telemetry, mode))


def only_span(telemetry: Telemetry, mode: str) -> Any:
    spans = telemetry.spans()
    assert len(spans) == 1, [(s.name, s.instrumentation_scope.name) for s in spans]
    assert spans[0].instrumentation_scope.name == (NATIVE_SCOPE if mode == "native" else "aimon_otel")
    return spans[0]


def check_priced(telemetry: Telemetry, mode: str, stream: bool) -> None:
    span = only_span(telemetry, mode)
    attributes = span.attributes
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert attributes["gen_ai.request.model"] == MODEL
    assert attributes["gen_ai.usage.input_tokens"] == TOTAL_INPUT
    assert attributes["gen_ai.usage.output_tokens"] == wire.OUTPUT_TOKENS  # cumulative, never summed (20 + 50)
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == wire.CACHE_READ_TOKENS
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == wire.CACHE_WRITE_TOKENS
    assert attributes["gen_ai.usage.cost"] == float(EXPECTED_COST)
    assert attributes["aimon.cost.cache_write"] == float((200 * Decimal("1.25") + 100 * Decimal(2)) / M)
    assert attributes["gen_ai.request.stream"] is stream
    assert list(attributes["gen_ai.response.finish_reasons"]) == ["end_turn"]
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in telemetry.points("gen_ai.client.token.usage")}
    assert tokens == {"input": TOTAL_INPUT, "output": wire.OUTPUT_TOKENS}
    parts = {p.attributes["aimon.token.type"]: p.value for p in telemetry.points("aimon.usage.tokens")}
    assert parts == {"cache_read": wire.CACHE_READ_TOKENS, "cache_write": wire.CACHE_WRITE_TOKENS}
    (cost,) = telemetry.points("gen_ai.usage.cost")
    assert cost.sum == float(EXPECTED_COST)
    # 200 cache-read tokens at $1 instead of $0.10 per million
    (savings,) = telemetry.points("aimon.cost.cache_savings")
    assert savings.value == float(200 * (Decimal(1) - Decimal("0.1")) / M)


def sync_calls() -> dict[str, Any]:
    def stream_helper(c: anthropic.Anthropic) -> Any:
        with c.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
            text = "".join(stream.text_stream)
            assert text == wire.REPLY_TEXT
            return stream.get_final_message()

    calls: dict[str, Any] = {
        "create": (False, lambda c: c.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)),
        "create_stream": (
            True,
            lambda c: list(c.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)),
        ),
        "stream_helper": (True, stream_helper),
        "beta_create": (False, lambda c: c.beta.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)),
    }
    if hasattr(anthropic.Anthropic(api_key="x").messages, "parse"):
        calls["parse"] = (
            False,
            lambda c: c.messages.parse(model=MODEL, max_tokens=100, messages=MESSAGES, output_format=Answer),
        )
    return calls


@pytest.mark.parametrize("kind", sorted(sync_calls()))
def test_sync_calls(kind: str, telemetry: Telemetry, client: anthropic.Anthropic, mode: str) -> None:
    stream, call = sync_calls()[kind]
    assert call(client) is not None
    check_priced(telemetry, mode, stream)


async def test_async_calls(telemetry: Telemetry, async_client: anthropic.AsyncAnthropic, mode: str) -> None:
    await async_client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    check_priced(telemetry, mode, False)
    telemetry.exporter.clear()
    stream = await async_client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
    if type(anthropic.AsyncStream) is type:  # older SDKs' metaclass answers False for any proxy
        assert isinstance(stream, anthropic.AsyncStream)
    events = [event.type async for event in stream]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    async with async_client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as helper:
        assert "".join([t async for t in helper.text_stream]) == wire.REPLY_TEXT
        final = await helper.get_final_message()
    assert final.usage.output_tokens == wire.OUTPUT_TOKENS
    spans = telemetry.spans()
    assert len(spans) == 2 and all(s.attributes["gen_ai.usage.cost"] == float(EXPECTED_COST) for s in spans)


def test_count_tokens_has_a_span_and_no_cost(telemetry: Telemetry, client: anthropic.Anthropic, mode: str) -> None:
    assert client.messages.count_tokens(model=MODEL, messages=MESSAGES).input_tokens == wire.COUNT_TOKENS
    span = only_span(telemetry, mode)
    assert "gen_ai.usage.cost" not in span.attributes and "aimon.pricing.status" not in span.attributes
    assert telemetry.points("aimon.pricing.unpriced_calls") == []
    assert telemetry.points("gen_ai.usage.cost") == []


def open_stream(client: anthropic.Anthropic, **extra: Any) -> Any:
    return client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True, **extra)


def test_stream_lifecycles(telemetry: Telemetry, client: anthropic.Anthropic, mode: str) -> None:
    closed = open_stream(client)
    next(iter(closed))
    closed.close()
    with open_stream(client) as managed:
        next(iter(managed))
    broken = open_stream(client)
    for _ in broken:
        break
    del broken
    gc.collect()
    failing = open_stream(client, extra_headers={SCENARIO_HEADER: "stream-error"})
    with pytest.raises(anthropic.APIStatusError):
        list(failing)
    spans = telemetry.spans()
    assert len(spans) == 4
    for span in spans:
        # usage known from message_start, output not yet reported: the call is never priced at more than it saw
        assert span.attributes["gen_ai.usage.input_tokens"] == TOTAL_INPUT
    assert spans[-1].status.status_code is StatusCode.ERROR
    if mode == "ours":
        assert [s.attributes["aimon.stream.outcome"] for s in spans] == ["closed", "closed", "abandoned", "error"]


@pytest.mark.parametrize(("scenario", "status"), [("error-529", 529), ("error-429", 429), ("error-400", 400)])
def test_errors_propagate_with_error_type(
    scenario: str, status: int, telemetry: Telemetry, client: anthropic.Anthropic, mode: str
) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(
            model=MODEL, max_tokens=100, messages=MESSAGES, extra_headers={SCENARIO_HEADER: scenario}
        )
    assert info.value.status_code == status
    span = only_span(telemetry, mode)
    assert span.status.status_code is StatusCode.ERROR
    (duration,) = telemetry.points("gen_ai.client.operation.duration")
    assert duration.attributes["error.type"] == type(info.value).__qualname__
    if mode == "ours":
        assert span.attributes["error.type"] == type(info.value).__qualname__


def test_tool_use_and_content_capture(fake: FakeProvider) -> None:
    telemetry = make_telemetry(capture_content=True)
    kwargs = client_kwargs(fake, telemetry, "ours")
    try:
        client = anthropic.Anthropic(**kwargs)
        message = client.messages.create(
            model=MODEL,
            max_tokens=100,
            system="Be brief",
            messages=MESSAGES,
            extra_headers={SCENARIO_HEADER: "tool-use"},
        )
        assert message.content[0].type == "tool_use"
        list(open_stream(client, extra_headers={SCENARIO_HEADER: "tool-use"}))
    finally:
        telemetry.instrumentor.uninstrument()
    plain, streamed = telemetry.spans()
    assert plain.attributes["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert json.loads(plain.attributes["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief"}]
    expected_call = {"type": "tool_call", "id": "toolu_fake_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert json.loads(plain.attributes["gen_ai.output.messages"])[0]["parts"] == [expected_call]
    assert json.loads(streamed.attributes["gen_ai.output.messages"])[0]["parts"] == [expected_call]


def test_native_and_ours_give_the_same_numbers(fake: FakeProvider) -> None:
    if not HAS_NATIVE_TRACING:
        pytest.skip("anthropic < 2 does not trace itself")
    results = {}
    for mode in ("ours", "native"):
        telemetry = make_telemetry()
        try:
            client = anthropic.Anthropic(**client_kwargs(fake, telemetry, mode))
            client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
            list(open_stream(client))
        finally:
            telemetry.instrumentor.uninstrument()
        results[mode] = [
            {
                k: s.attributes.get(k)
                for k in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.cost")
            }
            for s in telemetry.spans()
        ]
    assert results["native"] == results["ours"]


def test_vertex_client_is_priced_as_vertex(telemetry: Telemetry, fake: FakeProvider) -> None:
    kwargs: dict[str, Any] = {"open_telemetry": False} if HAS_NATIVE_TRACING else {}
    client = anthropic.AnthropicVertex(
        region="us-east5",
        project_id="proj",
        access_token="ya29.fake-token",
        base_url=f"{fake.base_url}/v1",
        max_retries=0,
        **kwargs,
    )
    client.messages.create(model="claude-sonnet-4-5@20250929", max_tokens=100, messages=MESSAGES)
    span = telemetry.span()
    assert span.attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    # Vertex's claude-sonnet-4-5 (genai-prices, google): input 3, cache read 0.30, cache write 3.75 / 1h 6, output 15
    expected = (100 * 3 + 200 * Decimal("0.3") + 200 * Decimal("3.75") + 100 * 6 + 50 * 15) / M
    assert span.attributes["gen_ai.usage.cost"] == float(expected)


@pytest.mark.skipif(not hasattr(anthropic.Anthropic(api_key="x"), "completions"), reason="legacy completions removed")
def test_legacy_completions(telemetry: Telemetry, fake: FakeProvider) -> None:
    client = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key=API_KEY, max_retries=0)
    client.completions.create(model="claude-2.1", max_tokens_to_sample=10, prompt="\n\nHuman: hi\n\nAssistant:")
    span = telemetry.span()
    assert span.name == "text_completion claude-2.1"
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop_sequence",)


def test_uninstrument_restores_anthropic() -> None:
    from anthropic.resources.messages import Messages

    original = Messages.__dict__["create"]
    telemetry = make_telemetry()
    assert Messages.__dict__["create"] is not original
    telemetry.instrumentor.uninstrument()
    assert Messages.__dict__["create"] is original


def test_raw_response_is_traced_once(telemetry: Telemetry, client: anthropic.Anthropic, mode: str) -> None:
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert raw.headers["x-request-id"] == "req_fake"
    message = raw.parse()
    assert message.usage.output_tokens == wire.OUTPUT_TOKENS
    span = only_span(telemetry, mode)
    assert span.attributes["gen_ai.usage.cost"] == float(EXPECTED_COST)


def test_bedrock_client_is_bedrock() -> None:
    from aimon_otel.instrumentation.providers.anthropic import provider_of

    bedrock = anthropic.AnthropicBedrock(aws_region="us-east-1", aws_access_key="AKIAFAKE", aws_secret_key="fake")
    assert provider_of(bedrock)[0] == "aws.bedrock"
    vertex = anthropic.AnthropicVertex(region="us-east5", project_id="p", access_token="t")
    assert provider_of(vertex)[0] == "gcp.vertex_ai"
    assert provider_of(anthropic.Anthropic(api_key="x"))[:2] == ("anthropic", "api.anthropic.com")


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_compaction_figures_are_ours_with_the_sdks_tracing_on_or_off(
    telemetry: Telemetry, client: anthropic.Anthropic, mode: str, stream: bool
) -> None:
    """A compaction pass that writes the cache: the SDK reads the top-level usage (229 in, 5 out, no
    cache write); the call used 55,425 in (55,096 a cache write) and 136 out, and the span says so."""
    headers = {SCENARIO_HEADER: "compaction"}
    if stream:
        list(client.messages.create(model=MODEL, max_tokens=200, messages=MESSAGES, stream=True, extra_headers=headers))
    else:
        client.messages.create(model=MODEL, max_tokens=200, messages=MESSAGES, extra_headers=headers)
    attributes = only_span(telemetry, mode).attributes
    assert attributes["gen_ai.usage.input_tokens"] == 55_425
    assert attributes["gen_ai.usage.output_tokens"] == 136
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == 55_096
    assert attributes.get("gen_ai.usage.cache_write.input_tokens", 55_096) == 55_096  # the SDK's name, our figure
    passes = [
        PriceUsage(
            input_tokens=p["input_tokens"] + p["cache_creation_input_tokens"],
            cache_write_tokens=p["cache_creation_input_tokens"],
            output_tokens=p["output_tokens"],
        )
        for p in wire.COMPACTION_PASSES
    ]
    expected = sum((calc_price(u, MODEL, provider_id="anthropic").total_price for u in passes), Decimal(0))
    assert attributes["gen_ai.usage.cost"] == pytest.approx(float(expected), abs=1e-12)
