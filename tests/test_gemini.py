"""google-genai (Gemini API and Vertex AI) over real HTTP to the fake provider.

Costs are hand-computed from the fake's usage (genai-prices 0.2.3, USD per million tokens): a
1,200-token prompt (400 of them cached) plus 50 tool-use prompt tokens is 1,250 input, 80
candidates plus 30 thoughts is 110 output. gemini-2.5-flash: input 0.30, cached 0.03, output 2.50:
850 x 0.30 + 400 x 0.03 + 110 x 2.50 = 542 per million = $0.000542. gemini-2.5-pro: 1.25, 0.125,
10 (2.50, 0.25, 15 above 200k input tokens).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

genai = pytest.importorskip("google.genai", reason="google-genai needs httpx >= 0.28: tested in .venv-oldest-gemini")
from google.genai import errors, types  # noqa: E402
from opentelemetry.instrumentation.utils import suppress_instrumentation  # noqa: E402

import aimon_otel  # noqa: E402
from aimon_otel.testing import FakeProvider  # noqa: E402
from aimon_otel.testing.gemini_wire import PROMPT_TOKENS_HEADER  # noqa: E402
from aimon_otel.testing.openai_wire import SCENARIO_HEADER  # noqa: E402
from tests.conftest import Telemetry, make_telemetry  # noqa: E402

FLASH = "gemini-2.5-flash"
FLASH_COST = 0.000542
PRO_COST = (850 * 1.25 + 400 * 0.125 + 110 * 10) / 1e6
GEMINI_KEY = "AIzaSyFAKE-gemini-key-0123456789abcdef"


_clients: list[Any] = []
"""Kept alive for the session: google-genai closes its HTTP client when a Client is collected, and
``client(fake).models.generate_content(...)`` would lose it mid-call."""


def client(fake: FakeProvider, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
    options = types.HttpOptions(base_url=fake.gemini_base_url, headers=headers or {})
    if kwargs.get("vertexai") and "project" in kwargs:
        kwargs.setdefault("credentials", _Credentials())
        made = genai.Client(http_options=options, **kwargs)
    else:
        made = genai.Client(api_key=GEMINI_KEY, http_options=options, **kwargs)
    _clients.append(made)
    return made


class _Credentials:
    """Google credentials that are always valid (the fake checks no token)."""

    token = "ya29.fake-token"
    expired = False
    valid = True
    quota_project_id = None

    def refresh(self, request: Any) -> None:
        pass

    def before_request(self, request: Any, method: str, url: str, headers: dict[str, str]) -> None:
        headers["authorization"] = f"Bearer {self.token}"

    def apply(self, headers: dict[str, str], token: str | None = None) -> None:
        headers["authorization"] = f"Bearer {self.token}"


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    made = make_telemetry()
    yield made
    made.instrumentor.uninstrument()


def test_generate_content_is_priced_exactly(telemetry: Telemetry, fake: FakeProvider) -> None:
    response = client(fake).models.generate_content(model=FLASH, contents="hi")
    assert response.text == "Hello from the fake Gemini provider."
    span = telemetry.span()
    a = span.attributes
    assert span.name == f"chat {FLASH}"
    assert (a["gen_ai.operation.name"], a["gen_ai.provider.name"], a["gen_ai.request.model"]) == (
        "chat",
        "gcp.gemini",
        FLASH,
    )
    assert a["gen_ai.response.model"] == FLASH
    if getattr(response, "response_id", None):  # newer google-genai reads it from the Gemini API's answer
        assert a["gen_ai.response.id"] == f"fake-{FLASH}"
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (1250, 110)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 400 and a["gen_ai.usage.reasoning.output_tokens"] == 30
    assert a["gen_ai.usage.cost"] == pytest.approx(FLASH_COST, abs=1e-12)
    assert a["aimon.pricing.status"] == "priced" and a["server.address"] == "127.0.0.1"
    (cost,) = telemetry.points("gen_ai.usage.cost")
    assert cost.sum == pytest.approx(FLASH_COST, abs=1e-12)
    assert cost.attributes["gen_ai.provider.name"] == "gcp.gemini"


def test_request_options_from_the_config(telemetry: Telemetry, fake: FakeProvider) -> None:
    config = types.GenerateContentConfig(
        temperature=0.2, top_p=0.9, top_k=40, max_output_tokens=256, stop_sequences=["END"], seed=7, candidate_count=1
    )
    client(fake).models.generate_content(model=f"models/{FLASH}", contents="hi", config=config)
    client(fake).models.generate_content(model=FLASH, contents="hi", config={"temperature": 0.5})
    first, second = telemetry.spans()
    a = first.attributes
    assert a["gen_ai.request.model"] == FLASH  # "models/" taken off
    assert (a["gen_ai.request.temperature"], a["gen_ai.request.top_p"], a["gen_ai.request.top_k"]) == (0.2, 0.9, 40)
    assert (a["gen_ai.request.max_tokens"], a["gen_ai.request.seed"], a["gen_ai.request.choice.count"]) == (256, 7, 1)
    assert a["gen_ai.request.stop_sequences"] == ("END",) and a["gen_ai.request.stream"] is False
    assert second.attributes["gen_ai.request.temperature"] == 0.5


def test_a_stream_is_one_span_with_the_last_chunks_usage(telemetry: Telemetry, fake: FakeProvider) -> None:
    plain = [c.text for c in _uninstrumented_stream(fake)]
    chunks = [c.text for c in client(fake).models.generate_content_stream(model=FLASH, contents="hi")]
    assert chunks == plain == ["Hello from ", "the fake ", "Gemini provider."]  # the same chunks, all of them
    span = telemetry.span()
    a = span.attributes
    assert a["gen_ai.request.stream"] is True and a["aimon.stream.outcome"] == "completed"
    # thoughts and tool-use tokens come in the last chunk only: counted, and counted once
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (1250, 110)
    assert a["gen_ai.usage.cost"] == pytest.approx(FLASH_COST, abs=1e-12)
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert "gen_ai.response.time_to_first_chunk" in a
    assert len(telemetry.points("gen_ai.client.operation.time_to_first_chunk")) == 1


def _uninstrumented_stream(fake: FakeProvider) -> list[Any]:
    with suppress_instrumentation():
        return list(client(fake).models.generate_content_stream(model=FLASH, contents="hi"))


def test_every_way_a_stream_ends_ends_its_span_once(telemetry: Telemetry, fake: FakeProvider) -> None:
    stream = client(fake).models.generate_content_stream(model=FLASH, contents="hi")
    next(iter(stream))
    stream.close()  # a generator closed by the app
    broken = client(fake, {SCENARIO_HEADER: "stream-error"})

    def read_broken() -> str:
        try:
            list(broken.models.generate_content_stream(model=FLASH, contents="hi"))
        except errors.APIError as exc:
            return type(exc).__name__
        return "no error"

    with suppress_instrumentation():
        plain = read_broken()
    assert read_broken() == plain  # what the app sees of a broken stream is the SDK's, instrumented or not
    for _ in client(fake).models.generate_content_stream(model=FLASH, contents="hi"):
        break  # abandoned: collected unfinished
    gc.collect()
    outcomes = sorted(str(s.attributes.get("aimon.stream.outcome")) for s in telemetry.spans())
    assert len(outcomes) == 3  # one span each, each ended once
    # google-genai raises on an error event mid-stream since 1.x; older releases yield it as a chunk
    broken_outcome = "completed" if plain == "no error" else "error"
    assert outcomes.count(broken_outcome) == 1
    outcomes.remove(broken_outcome)
    closed, left = outcomes
    # The SDK's public stream iterates ours in a for loop (its continuation layer), so closing or leaving
    # the public generator reaches ours when it is collected: both end as closed or abandoned, never twice.
    assert {closed, left} <= {"closed", "abandoned"}


def test_async_calls_and_streams(telemetry: Telemetry, fake: FakeProvider) -> None:
    async def calls() -> list[str]:
        made = client(fake)
        await made.aio.models.generate_content(model=FLASH, contents="hi")
        return [c.text async for c in await made.aio.models.generate_content_stream(model=FLASH, contents="hi")]

    assert asyncio.run(calls()) == ["Hello from ", "the fake ", "Gemini provider."]
    plain, streamed = telemetry.spans()
    for span in (plain, streamed):
        assert span.attributes["gen_ai.usage.cost"] == pytest.approx(FLASH_COST, abs=1e-12)
    assert streamed.attributes["aimon.stream.outcome"] == "completed"


def test_vertex_on_regional_global_and_express_hosts(telemetry: Telemetry, fake: FakeProvider) -> None:
    regional = client(fake, vertexai=True, project="p1", location="europe-west4")
    regional.models.generate_content(
        model=f"projects/p1/locations/europe-west4/publishers/google/models/{FLASH}", contents="hi"
    )
    client(fake, vertexai=True, project="p1", location="global").models.generate_content(model=FLASH, contents="hi")
    client(fake, vertexai=True).models.generate_content(model=f"publishers/google/models/{FLASH}", contents="hi")
    paths = [r.path for r in fake.requests[-3:]]
    assert paths[0].startswith("/v1beta1/projects/p1/locations/europe-west4/publishers/google/models/")
    assert paths[1].startswith("/v1beta1/projects/p1/locations/global/")
    assert paths[2].startswith("/v1beta1/publishers/google/models/")
    for span in telemetry.spans():
        a = span.attributes
        assert (a["gen_ai.provider.name"], a["gen_ai.request.model"]) == ("gcp.vertex_ai", FLASH)
        assert a["gen_ai.usage.cost"] == pytest.approx(FLASH_COST, abs=1e-12)


# Scenario audio-video: the prompt is 250 text, 550 audio, 300 video and 100 image tokens; of the 400
# cached, 250 are audio. gemini-2.5-flash prices audio input at 1.00 and cached audio at 0.10 (text,
# image and video: 0.30 and 0.03): 300 x 1.00 + 250 x 0.10 + 150 x 0.03 + 550 x 0.30 + 110 x 2.50
# = 769.5 per million (as text alone: 542).
MEDIA_COST = (300 * 1.00 + 250 * 0.10 + 150 * 0.03 + 550 * 0.30 + 110 * 2.50) / 1e6


@pytest.mark.parametrize("where", ["gemini-api", "vertex"])
def test_audio_and_video_input_is_priced_at_its_own_rates(where: str, telemetry: Telemetry, fake: FakeProvider) -> None:
    vertex: dict[str, Any] = {"vertexai": True, "project": "p1", "location": "us-central1"} if where == "vertex" else {}
    models = client(fake, {SCENARIO_HEADER: "audio-video"}, **vertex).models
    models.generate_content(model=FLASH, contents="describe the clip")
    list(models.generate_content_stream(model=FLASH, contents="describe the clip"))
    for span in telemetry.spans():
        a = span.attributes
        assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.cache_read.input_tokens"]) == (1250, 400)
        assert a["gen_ai.usage.cost"] == pytest.approx(MEDIA_COST, abs=1e-12)
        assert a["aimon.cost.cache_read"] == pytest.approx((250 * 0.10 + 150 * 0.03) / 1e6, abs=1e-12)
    assert len(telemetry.spans()) == 2


def test_model_version_with_a_models_prefix(telemetry: Telemetry, fake: FakeProvider) -> None:
    client(fake, {SCENARIO_HEADER: "model-version-prefixed"}).models.generate_content(model=FLASH, contents="hi")
    assert telemetry.span().attributes["gen_ai.response.model"] == FLASH


def test_long_context_prices_above_200k_input_tokens(telemetry: Telemetry, fake: FakeProvider) -> None:
    client(fake, {PROMPT_TOKENS_HEADER: "250000"}).models.generate_content(model="gemini-2.5-pro", contents="hi")
    client(fake).models.generate_content(model="gemini-2.5-pro", contents="hi")
    long, short = telemetry.spans()
    # 250,050 input (400 cached), 110 output, all at the tier above 200k: 2.50, 0.25, 15
    expected = ((250_050 - 400) * 2.5 + 400 * 0.25 + 110 * 15) / 1e6
    assert long.attributes["gen_ai.usage.cost"] == pytest.approx(expected, abs=1e-12)
    assert short.attributes["gen_ai.usage.cost"] == pytest.approx(PRO_COST, abs=1e-12)


def test_embeddings_without_usage_are_no_usage_not_zero(telemetry: Telemetry, fake: FakeProvider) -> None:
    result = client(fake).models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
    assert len(result.embeddings) == 2
    client(fake, vertexai=True, project="p1", location="us-central1").models.embed_content(
        model="gemini-embedding-001", contents="a"
    )
    gemini_api, vertex = telemetry.spans()
    assert gemini_api.attributes["gen_ai.operation.name"] == "embeddings"
    assert gemini_api.attributes["aimon.pricing.status"] == "no_usage"
    assert "gen_ai.usage.cost" not in gemini_api.attributes  # unpriced, never $0
    assert gemini_api.attributes["gen_ai.embeddings.dimension.count"] == 3
    # Vertex reports the tokens: 6 at $0.15 per million
    assert vertex.attributes["gen_ai.usage.input_tokens"] == 6
    assert vertex.attributes["gen_ai.usage.cost"] == pytest.approx(6 * 0.15 / 1e6, abs=1e-15)
    (unpriced,) = telemetry.points("aimon.pricing.unpriced_calls")
    assert unpriced.attributes["aimon.pricing.status"] == "no_usage"


def test_count_tokens_is_a_span_without_cost(telemetry: Telemetry, fake: FakeProvider) -> None:
    assert client(fake).models.count_tokens(model=FLASH, contents="hi").total_tokens == 31
    span = telemetry.span()
    assert span.attributes["gen_ai.operation.name"] == "count_tokens"
    assert "gen_ai.usage.cost" not in span.attributes
    assert telemetry.points("aimon.pricing.unpriced_calls") == []


def test_a_chat_is_one_span_per_api_call(telemetry: Telemetry, fake: FakeProvider) -> None:
    chat = client(fake).chats.create(model=FLASH)
    chat.send_message("hello")
    chat.send_message("and again")
    texts = [c.text for c in chat.send_message_stream("streamed")]
    assert "".join(texts) == "Hello from the fake Gemini provider."
    spans = telemetry.spans()
    assert len(spans) == 3
    assert sum(float(s.attributes["gen_ai.usage.cost"]) for s in spans) == pytest.approx(3 * FLASH_COST, abs=1e-12)


def test_errors_reach_the_app_unchanged_with_the_apis_status(telemetry: Telemetry, fake: FakeProvider) -> None:
    with pytest.raises(errors.ClientError) as raised:
        client(fake, {SCENARIO_HEADER: "error-429"}).models.generate_content(model=FLASH, contents="hi")
    assert raised.value.code == 429
    with pytest.raises(errors.ServerError):
        client(fake, {SCENARIO_HEADER: "error-500"}).models.generate_content(model=FLASH, contents="hi")
    with pytest.raises(errors.ClientError):
        client(fake, {SCENARIO_HEADER: "error-401-echo-key"}).models.generate_content(model=FLASH, contents="hi")
    rate_limited, server, auth = telemetry.spans()
    assert rate_limited.attributes["error.type"] == "RESOURCE_EXHAUSTED"
    assert server.attributes["error.type"] == "INTERNAL"
    assert auth.attributes["error.type"] == "UNAUTHENTICATED"
    assert GEMINI_KEY not in (auth.status.description or "")  # the key the provider echoed is scrubbed
    assert all("gen_ai.usage.cost" not in s.attributes for s in telemetry.spans())


def test_a_block_budget_refuses_gemini_calls_before_sending(tmp_path: Any, fake: FakeProvider) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "budgets:\n  - {name: gemini, match: {provider: gcp.gemini}, limit_usd: 0.0008, period: day, action: block}\n"
    )
    telemetry = make_telemetry(budgets=str(budgets))
    try:
        made = client(fake)
        made.models.generate_content(model=FLASH, contents="hi")
        made.models.generate_content(model=FLASH, contents="hi")  # crosses
        sent = len(fake.requests)
        with pytest.raises(aimon_otel.BudgetExceeded):
            made.models.generate_content(model=FLASH, contents="hi")
        with pytest.raises(aimon_otel.BudgetExceeded):
            list(made.models.generate_content_stream(model=FLASH, contents="hi"))
        assert len(fake.requests) == sent  # nothing left the process
    finally:
        telemetry.instrumentor.uninstrument()
    refused = [s for s in telemetry.spans() if s.attributes.get("error.type") == "aimon.budget_exceeded"]
    assert len(refused) == 2


def test_content_is_recorded_only_when_asked(fake: FakeProvider) -> None:
    telemetry = make_telemetry(capture_content=True)
    try:
        config = types.GenerateContentConfig(system_instruction="Be brief.")
        client(fake).models.generate_content(model=FLASH, contents="What is 2+2?", config=config)
    finally:
        telemetry.instrumentor.uninstrument()
    a = telemetry.span().attributes
    assert '"What is 2+2?"' in str(a["gen_ai.input.messages"])
    assert "Be brief." in str(a["gen_ai.system_instructions"])
    assert "Hello from the fake Gemini provider." in str(a["gen_ai.output.messages"])


def test_the_key_id_of_a_gemini_key(fake: FakeProvider) -> None:
    from aimon_otel.attribution.privacy import key_fingerprint

    telemetry = make_telemetry(key_salt="salt")
    try:
        client(fake).models.generate_content(model=FLASH, contents="hi")
    finally:
        telemetry.instrumentor.uninstrument()
    assert telemetry.span().attributes["aimon.api_key.id"] == key_fingerprint(GEMINI_KEY, "salt")


def test_with_the_official_google_genai_instrumentation_one_span_per_call_and_priced(fake: FakeProvider) -> None:
    """Its span encloses the call we follow: ours joins it (no second span) and our figures win (it
    counts no tool-use prompt tokens and names the provider "gemini")."""
    official = pytest.importorskip("opentelemetry.instrumentation.google_genai", reason="installed in .venv only")
    telemetry = make_telemetry()
    instrumentor = official.GoogleGenAiSdkInstrumentor()
    # 1.3b0 declares google-genai < 3; it works with 3.x, which is what the newest run has
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider, skip_dep_check=True
    )
    try:
        made = client(fake)
        made.models.generate_content(model=FLASH, contents="hi")
        assert [c.text for c in made.models.generate_content_stream(model=FLASH, contents="hi")][
            -1
        ] == "Gemini provider."
        made.models.embed_content(model="gemini-embedding-001", contents="hi")
    finally:
        instrumentor.uninstrument()
        telemetry.instrumentor.uninstrument()
    spans = telemetry.spans()
    assert [s.instrumentation_scope.name for s in spans] == ["opentelemetry.instrumentation.google_genai"] * 3
    plain, streamed, embedded = spans
    for span in (plain, streamed):
        a = span.attributes
        assert a["gen_ai.provider.name"] == "gcp.gemini"
        assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (1250, 110)
        assert a["gen_ai.usage.cost"] == pytest.approx(FLASH_COST, abs=1e-12)
        assert a["aimon.pricing.status"] == "priced"
    assert embedded.attributes["aimon.pricing.status"] == "no_usage"
    assert sum(p.sum for p in telemetry.points("gen_ai.usage.cost")) == pytest.approx(2 * FLASH_COST, abs=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "provider", "address"),
    [
        ({"api_key": GEMINI_KEY}, "gcp.gemini", "generativelanguage.googleapis.com"),
        (
            {"vertexai": True, "project": "p1", "location": "europe-west4"},
            "gcp.vertex_ai",
            "europe-west4-aiplatform.googleapis.com",
        ),
        ({"vertexai": True, "project": "p1", "location": "global"}, "gcp.vertex_ai", "aiplatform.googleapis.com"),
        ({"vertexai": True, "api_key": GEMINI_KEY}, "gcp.vertex_ai", "aiplatform.googleapis.com"),
    ],
)
def test_the_real_hosts_are_read_as_the_server(kwargs: dict[str, Any], provider: str, address: str) -> None:
    """What a call to the real services would record (read from the client; nothing is sent)."""
    from aimon_otel.config import Settings
    from aimon_otel.instrumentation.providers.gemini import GenerateContent

    if "project" in kwargs:
        kwargs = {**kwargs, "credentials": _Credentials()}
    made = genai.Client(**kwargs)
    _clients.append(made)
    plan = GenerateContent(Settings(), ()).plan(made.models, {"model": FLASH, "contents": "hi"})
    invocation = plan.invocation
    assert (invocation.provider, invocation.server_address, invocation.server_port) == (provider, address, 443)
