"""instrument / uninstrument / re-instrument, and faults inside the instrumentation stay inside."""

from __future__ import annotations

import logging

import openai
import pytest
from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

from aimon_otel import AimonInstrumentor
from aimon_otel.providers.openai import OpenAIEndpoint
from aimon_otel.testing import openai_wire as wire
from tests.conftest import MESSAGES, Telemetry, make_telemetry

Completions = openai.resources.chat.completions.Completions


def test_uninstrument_restores_originals_and_reinstrument_works(client: openai.OpenAI) -> None:
    original = Completions.__dict__["create"]
    telemetry = make_telemetry()
    assert Completions.__dict__["create"] is not original
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    telemetry.instrumentor.uninstrument()
    assert Completions.__dict__["create"] is original
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(telemetry.spans()) == 1

    again = make_telemetry()
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        again.instrumentor.uninstrument()
    assert len(again.spans()) == 1
    assert Completions.__dict__["create"] is original


def test_instrument_twice_wraps_once(telemetry: Telemetry, client: openai.OpenAI) -> None:
    AimonInstrumentor().instrument()  # a second instrument() is a no-op: the instrumentor is a singleton
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(telemetry.spans()) == 1


def test_fault_in_response_reading_is_logged_once_and_never_raised(
    telemetry: Telemetry, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("boom in extraction")

    monkeypatch.setattr(OpenAIEndpoint, "record_response", broken)
    monkeypatch.setattr("aimon_otel.faults._reported", set())
    with caplog.at_level(logging.WARNING, logger="aimon_otel"):
        first = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        second = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert first.choices[0].message.content == second.choices[0].message.content == wire.REPLY_TEXT
    assert caplog.text.count("internal error in response") == 1
    assert len(telemetry.spans()) == 2  # spans still end


def test_fault_in_request_reading_calls_through(
    telemetry: Telemetry, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise KeyError("boom in plan")

    monkeypatch.setattr(OpenAIEndpoint, "plan", broken)
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert telemetry.spans() == []


def test_fault_in_stream_reading_keeps_the_stream(
    telemetry: Telemetry, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aimon_otel.providers.openai import ChunkStreamAccumulator

    def broken(self: object, chunk: object) -> bool:
        raise ValueError("boom per chunk")

    monkeypatch.setattr(ChunkStreamAccumulator, "on_item", broken)
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert [c.choices[0].delta.content for c in chunks[1:-1]] == ["Hello", " from", " the", " fake", " provider."]
    assert telemetry.span().attributes["aimon.stream.outcome"] == "completed"


def test_entry_point_is_registered_and_loadable() -> None:
    from importlib.metadata import distribution, entry_points

    (entry,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "aimon"]
    assert entry.load() is AimonInstrumentor
    assert get_dist_dependency_conflicts(distribution("aimon-otel")) is None
    assert AimonInstrumentor()._check_dependency_conflicts() is None
