"""Real SDKs over real HTTP to the fake provider; spans and metrics read from in-memory exporters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aimon_otel import AimonInstrumentor
from aimon_otel.testing import FakeProvider

API_KEY = "sk-aimon-test-SECRET-0123456789"
OPENAI_HAS_RESPONSES = hasattr(openai.OpenAI(api_key="x"), "responses")
OPENAI_MAJOR = int(openai.__version__.split(".")[0])


@dataclass
class Telemetry:
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    instrumentor: AimonInstrumentor
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self) -> ReadableSpan:
        spans = self.spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def points(self, name: str) -> list[HistogramDataPoint]:
        data = self.reader.get_metrics_data()
        found: list[HistogramDataPoint] = []
        for resource_metrics in data.resource_metrics if data else []:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)  # type: ignore[arg-type]
        return found

    def metric(self, name: str) -> Any:
        data = self.reader.get_metrics_data()
        for resource_metrics in data.resource_metrics if data else []:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        return metric
        return None


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


def make_telemetry(**settings: Any) -> Telemetry:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentor = AimonInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, **settings)
    return Telemetry(exporter, reader, instrumentor, tracer_provider, meter_provider)


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    made = make_telemetry()
    yield made
    made.instrumentor.uninstrument()


@pytest.fixture
def client(fake: FakeProvider) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)


@pytest.fixture
def async_client(fake: FakeProvider) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)


MESSAGES = [{"role": "user", "content": "Say hello"}]


def zero_code_environment(fake: FakeProvider, **extra: str) -> dict[str, str]:
    """The environment of an app run under ``opentelemetry-instrument`` against the fake provider, spans
    printed by the console exporter."""
    import os

    return {
        **os.environ,
        "OPENAI_BASE_URL": fake.openai_base_url,
        "OPENAI_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": fake.anthropic_base_url,
        "ANTHROPIC_API_KEY": API_KEY,
        "GOOGLE_GEMINI_BASE_URL": fake.gemini_base_url,
        "GOOGLE_API_KEY": API_KEY,
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": fake.base_url,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIAZEROCODETEST",
        "AWS_SECRET_ACCESS_KEY": "zero-code-secret",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        **extra,
    }


needs_responses = pytest.mark.skipif(not OPENAI_HAS_RESPONSES, reason="this openai SDK has no Responses API")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Outside CI a missing server skips its tests: say in one line what was not tested and why."""
    from tests.tools import missing_summary

    line = missing_summary()
    if line:
        terminalreporter.write_line(line, yellow=True, bold=True)
