"""Hardening under load: stream lifecycles from many threads and tasks, secrets in every workload,
and a runaway attribute that must not blow up metric series."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest

import aimon_otel
from aimon_otel.attribution.cardinality import OTHER
from aimon_otel.instrumentation.usage import Usage
from aimon_otel.pricing import catalog as catalog_module
from aimon_otel.pricing import engine as engine_module
from aimon_otel.testing import FakeProvider
from aimon_otel.testing import openai_wire as wire
from tests.conftest import MESSAGES, OPENAI_HAS_RESPONSES, Telemetry, make_telemetry

OPENAI_KEY = "sk-proj-LEAKCANARY-openai-7f3a9c"
ANTHROPIC_KEY = "sk-ant-api03-LEAKCANARY-anthropic-2b8e"
CUSTOM_SECRET = "LEAKCANARY-custom-header-91d0"
HAS_NATIVE_TRACING = importlib.util.find_spec("anthropic._tracing") is not None
CHUNKS = {wire.CHUNKS_HEADER: "40"}


def openai_stream(client: openai.OpenAI, **extra: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True, **extra)


def anthropic_stream(client: anthropic.Anthropic, **extra: Any) -> Any:
    return client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES, stream=True, **extra)


def exhausted(open_stream: Callable[..., Any]) -> None:
    for _ in open_stream(extra_headers=CHUNKS):
        pass


def broken_then_closed(open_stream: Callable[..., Any]) -> None:
    chunks = open_stream(extra_headers=CHUNKS)
    for _ in chunks:
        break
    chunks.close()


def managed(open_stream: Callable[..., Any]) -> None:
    with open_stream(extra_headers=CHUNKS) as chunks:
        next(iter(chunks))


def errored(open_stream: Callable[..., Any]) -> None:
    try:
        for _ in open_stream(extra_headers={wire.SCENARIO_HEADER: "stream-error"}):
            pass
    except (openai.APIError, anthropic.APIError):
        return
    raise AssertionError("the stream should have failed")


def abandoned(open_stream: Callable[..., Any]) -> None:
    chunks = open_stream(extra_headers=CHUNKS)
    next(iter(chunks))
    del chunks  # never closed: the span ends when the stream is collected


# Abandoned streams are left out under threads: with httpx/httpcore < 1 (openai 1.40), the collector can
# finalize an unclosed stream while the same thread holds the connection pool's lock, and httpcore
# deadlocks, instrumented or not. Abandonment is tested single-threaded (test_openai_streams, test_anthropic).
LIFECYCLES = (exhausted, broken_then_closed, managed, errored)
EXPECTED_OUTCOME = {
    exhausted: "completed",
    broken_then_closed: "closed",
    managed: "closed",
    errored: "error",
    abandoned: "abandoned",
}


def test_stream_lifecycles_from_32_threads(
    telemetry: Telemetry, fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    openai_client = openai.OpenAI(base_url=fake.openai_base_url, api_key=OPENAI_KEY, max_retries=0)
    kwargs: dict[str, Any] = {"base_url": fake.anthropic_base_url, "api_key": ANTHROPIC_KEY, "max_retries": 0}
    if HAS_NATIVE_TRACING:
        kwargs["open_telemetry"] = False  # our own spans, whose outcome we count
    anthropic_client = anthropic.Anthropic(**kwargs)
    rounds = 3

    def worker(index: int) -> None:
        open_stream: Callable[..., Any]
        if index % 2:
            open_stream = lambda **extra: openai_stream(openai_client, **extra)  # noqa: E731
        else:
            open_stream = lambda **extra: anthropic_stream(anthropic_client, **extra)  # noqa: E731
        with aimon_otel.attributes(tenant_id=f"t{index}"):
            for _ in range(rounds):
                for lifecycle in LIFECYCLES:
                    lifecycle(open_stream)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gc.collect()

    spans = telemetry.spans()
    assert len(spans) == 32 * rounds * len(LIFECYCLES)  # each call's span ended, and exported, once
    assert len({span.context.span_id for span in spans}) == len(spans)
    outcomes = Counter(str(span.attributes["aimon.stream.outcome"]) for span in spans)
    assert outcomes == Counter(
        {o: n * 32 * rounds for o, n in Counter(EXPECTED_OUTCOME[f] for f in LIFECYCLES).items()}
    )
    per_tenant = Counter(str(span.attributes["tenant.id"]) for span in spans)
    assert per_tenant == {f"t{i}": rounds * len(LIFECYCLES) for i in range(32)}
    (ended,) = {sum(p.count for p in telemetry.points("gen_ai.client.operation.duration"))}
    assert ended == len(spans)  # one duration point per call: nothing recorded twice
    assert "ended span" not in caplog.text


def test_cancelled_async_streams(telemetry: Telemetry, fake: FakeProvider, caplog: pytest.LogCaptureFixture) -> None:
    """Tasks cancelled mid-stream, in and out of ``async with``: every span still ends once."""
    caplog.set_level(logging.WARNING)

    async def run() -> None:
        async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key=OPENAI_KEY, max_retries=0) as client:
            all_started = asyncio.Event()
            begun: set[int] = set()

            def note(index: int) -> None:
                begun.add(index)
                if len(begun) == 100:
                    all_started.set()

            async def consume(index: int) -> None:
                chunks = await client.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers={wire.CHUNKS_HEADER: "200"}
                )
                if index % 2:
                    async with chunks:
                        async for _ in chunks:
                            note(index)
                            await asyncio.sleep(0.001)
                else:
                    async for _ in chunks:
                        note(index)
                        await asyncio.sleep(0.001)

            tasks = [asyncio.create_task(consume(i)) for i in range(100)]
            await asyncio.wait_for(all_started.wait(), 60)  # every stream is under way: cancel mid-stream
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) or r is None for r in results)
            finished.extend(r is None for r in results)

    finished: list[bool] = []
    asyncio.run(run())
    gc.collect()
    spans = telemetry.spans()
    assert len(spans) == 100
    assert len({span.context.span_id for span in spans}) == 100
    # Cancelled while the app awaited between chunks: a stream inside ``async with`` is closed by it, one
    # outside is abandoned (collected unfinished). Cancelled while awaiting the next chunk: the stream
    # itself raised CancelledError, so its outcome is "error" with that type. A task that finished
    # first has a completed stream. Every span ended exactly once, with the reason that applies.
    done_with = sum(finished[1::2])
    done_bare = sum(finished[0::2])
    outcomes = Counter(str(span.attributes.get("aimon.stream.outcome")) for span in spans)
    assert set(outcomes) <= {"completed", "closed", "abandoned", "error"}
    assert outcomes["completed"] == done_with + done_bare
    assert outcomes["closed"] + outcomes["abandoned"] + outcomes["error"] == 100 - done_with - done_bare
    assert outcomes["closed"] <= 50 - done_with and outcomes["abandoned"] <= 50 - done_bare
    for span in spans:
        is_error = span.attributes["aimon.stream.outcome"] == "error"
        assert span.attributes.get("error.type") == ("CancelledError" if is_error else None), dict(span.attributes)
    assert "ended span" not in caplog.text


def secret_workloads(fake: FakeProvider, telemetry: Telemetry, native: bool) -> int:
    """Every kind of call, with recognisable keys in the SDKs' auth headers and in a custom header."""
    headers = {"x-custom-auth": CUSTOM_SECRET}
    oa = openai.OpenAI(base_url=fake.openai_base_url, api_key=OPENAI_KEY, max_retries=0, default_headers=headers)
    kwargs: dict[str, Any] = {"base_url": fake.anthropic_base_url, "api_key": ANTHROPIC_KEY, "max_retries": 0}
    if HAS_NATIVE_TRACING:
        kwargs["open_telemetry"] = {"tracer_provider": telemetry.tracer_provider} if native else False
    an = anthropic.Anthropic(default_headers=headers, **kwargs)
    calls = 0
    oa.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    list(openai_stream(oa))
    oa.embeddings.create(model="text-embedding-3-small", input="hello")
    oa.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES).parse()
    calls += 4
    if OPENAI_HAS_RESPONSES:
        oa.responses.create(model="gpt-4o-mini", input="hello")
        calls += 1
    with pytest.raises(openai.AuthenticationError, match=OPENAI_KEY):  # the app still sees what the provider said
        oa.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={wire.SCENARIO_HEADER: "error-401-echo-key"}
        )
    an.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES)
    list(anthropic_stream(an))
    with an.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES) as managed_stream:
        managed_stream.get_final_message()
    with pytest.raises(anthropic.AuthenticationError, match=ANTHROPIC_KEY):
        an.messages.create(
            model="claude-haiku-4-5",
            max_tokens=64,
            messages=MESSAGES,
            extra_headers={wire.SCENARIO_HEADER: "error-401-echo-key"},
        )
    return calls + 5


@pytest.mark.parametrize(
    "native", [False, pytest.param(True, marks=pytest.mark.skipif(not HAS_NATIVE_TRACING, reason="anthropic < 2"))]
)
@pytest.mark.parametrize("capture", [False, True])
def test_keys_never_reach_any_span_metric_or_log(
    capture: bool, native: bool, fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    telemetry = make_telemetry(capture_content=capture)
    try:
        calls = secret_workloads(fake, telemetry, native)
    finally:
        telemetry.instrumentor.uninstrument()
    telemetry.tracer_provider.force_flush()
    spans = telemetry.spans()
    assert len(spans) == calls
    assert any(s.status.description and "[REDACTED]" in s.status.description for s in spans)
    if capture:
        assert any("gen_ai.input.messages" in s.attributes for s in spans)  # content really was on
    data = telemetry.reader.get_metrics_data()
    exported = "\n".join([*(span.to_json() for span in spans), data.to_json() if data else ""])
    logged = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    for secret in (OPENAI_KEY, ANTHROPIC_KEY, CUSTOM_SECRET, "LEAKCANARY"):
        assert secret not in exported
        assert secret not in logged


def test_runaway_model_and_user_ids_are_capped_on_metrics(fake: FakeProvider, caplog: pytest.LogCaptureFixture) -> None:
    telemetry = make_telemetry(metrics_max_values=5, metrics_include_user=True)
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key=OPENAI_KEY, max_retries=0)
    try:
        for i in range(40):
            with aimon_otel.attributes(tenant_id="acme", user_id=f"user-{i}"):
                client.chat.completions.create(model=f"ft:gpt-4o-mini:acme:run-{i}", messages=MESSAGES)
    finally:
        telemetry.instrumentor.uninstrument()
    spans = telemetry.spans()
    assert {s.attributes["gen_ai.request.model"] for s in spans} == {f"ft:gpt-4o-mini:acme:run-{i}" for i in range(40)}
    assert {s.attributes["user.id"] for s in spans} == {f"user-{i}" for i in range(40)}  # spans keep the truth
    points = telemetry.points("gen_ai.client.operation.duration")
    models = Counter(str(p.attributes["gen_ai.request.model"]) for p in points)
    users = {str(p.attributes["user.id"]) for p in points}
    assert set(models) == {f"ft:gpt-4o-mini:acme:run-{i}" for i in range(5)} | {OTHER}
    assert users == {f"user-{i}" for i in range(5)} | {OTHER}
    assert len(points) == 6  # 5 admitted + one _other series, not 40
    assert sum(p.count for p in points) == 40  # nothing dropped, only folded
    assert {str(p.attributes["tenant.id"]) for p in points} == {"acme"}  # attributes under the cap untouched
    warnings = [r for r in caplog.records if "distinct values" in r.getMessage()]
    assert sorted(str(r.args[0]) for r in warnings) == ["gen_ai.request.model", "gen_ai.response.model", "user.id"]


def test_bad_metrics_max_values_is_a_clear_error_in_code() -> None:
    with pytest.raises(aimon_otel.AimonConfigError, match=r"metrics_max_values='lots'.*must be a positive"):
        make_telemetry(metrics_max_values="lots")


def test_runaway_unknown_models_do_not_grow_memory_or_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(engine_module, "MAX_WARNED_MODELS", 3)
    monkeypatch.setattr(catalog_module, "MAX_CACHED_LOOKUPS", 5)
    engine = aimon_otel.PricingEngine()
    usage = Usage(input_tokens=10, output_tokens=5)
    known = engine.price("openai", "gpt-4o-mini", usage)
    for i in range(20):
        result = engine.price("openai", f"runaway-model-{i}", usage)
        assert result.total is None and result.status.value == "unknown_model"  # never $0, however many
    assert engine.price("openai", "gpt-4o-mini", usage).total == known.total
    assert len(engine.catalog._current().models) == 5
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("aimon_otel")]
    assert len(warnings) == 4 and "3 unknown models seen; no more are logged" in warnings[-1]
