"""Spend per API key, never the key: ``aimon.api_key.id`` on spans and metrics, and not one exported byte
(OTLP traces, metrics and logs over real HTTP, the Prometheus exposition, the Python log) holding the key
or any 8 characters of it."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

import aimon_otel
from aimon_otel.attribution.privacy import key_fingerprint
from aimon_otel.testing import FakeProvider
from aimon_otel.testing import openai_wire as wire
from tests.conftest import MESSAGES, make_telemetry
from tests.tools import PostSink

OPENAI_KEY = "sk-proj-Q7vK2mXw9LpR4tYz8NbC3dFh6JsA1eUo5GiT0qWx"
OTHER_OPENAI_KEY = "sk-proj-Z1aB2cD3eF4gH5iJ6kL7mN8oP9qR0sT1uV2wX3yZ"
ANTHROPIC_KEY = "sk-ant-api03-Hn4Rb8Tq2Wc6Yk0Mv5Xs9Pz3Lg7Df1Ja-8EoUiB2"
GEMINI_KEY = "AIzaSyD4kP9mQ2rT7vW1xY5zB8cF3gH6jK0nL2s"
SALT = "deployment-salt-4c1d"
HAS_GEMINI = importlib.util.find_spec("google") is not None and importlib.util.find_spec("google.genai") is not None
KEYS = (OPENAI_KEY, OTHER_OPENAI_KEY, ANTHROPIC_KEY, *((GEMINI_KEY,) if HAS_GEMINI else ()))


@pytest.fixture
def collector() -> Iterator[PostSink]:
    """A local OTLP/HTTP endpoint that keeps every payload as it arrived."""
    found = PostSink()
    yield found
    found.stop()


def windows(secret: str, size: int = 8) -> list[str]:
    """Every ``size``-character piece of the key past its well-known prefix (``sk-proj-``, ``sk-ant-api03-``)."""
    if secret.startswith("AIza"):
        return [secret[4:][i : i + size] for i in range(len(secret) - 4 - size + 1)]
    body = secret.split("-", 2)[-1] if secret.startswith("sk-ant") else secret.removeprefix("sk-proj-")
    return [body[i : i + size] for i in range(len(body) - size + 1)]


def calls(fake: FakeProvider) -> None:
    first = openai.OpenAI(base_url=fake.openai_base_url, api_key=OPENAI_KEY, max_retries=0)
    second = openai.OpenAI(base_url=fake.openai_base_url, api_key=OTHER_OPENAI_KEY, max_retries=0)
    claude = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key=ANTHROPIC_KEY, max_retries=0)
    with aimon_otel.attributes(tenant_id="acme"):
        first.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        list(first.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
        second.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        claude.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES)
        with pytest.raises(openai.AuthenticationError):  # the provider echoes the key in its error
            first.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers={wire.SCENARIO_HEADER: "error-401-echo-key"}
            )
        with pytest.raises(anthropic.AuthenticationError):
            claude.messages.create(
                model="claude-haiku-4-5",
                max_tokens=50,
                messages=MESSAGES,
                extra_headers={wire.SCENARIO_HEADER: "error-401-echo-key"},
            )
        if HAS_GEMINI:
            gemini_calls(fake)


def gemini_calls(fake: FakeProvider) -> None:
    from google import genai
    from google.genai import errors, types

    options = types.HttpOptions(base_url=fake.gemini_base_url)
    gemini = genai.Client(api_key=GEMINI_KEY, http_options=options)
    gemini.models.generate_content(model="gemini-2.5-flash", contents="hi")
    list(gemini.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    echo = types.HttpOptions(base_url=fake.gemini_base_url, headers={wire.SCENARIO_HEADER: "error-401-echo-key"})
    rejected = genai.Client(api_key=GEMINI_KEY, http_options=echo)  # kept: a collected client closes its HTTP client
    with pytest.raises(errors.ClientError):
        rejected.models.generate_content(model="gemini-2.5-flash", contents="hi")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK's LoggingHandler, fine for a test
def test_spend_per_key_reaches_every_export_and_the_key_none(
    fake: FakeProvider, collector: PostSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{collector.url}/v1/traces")))
    otlp_metrics = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{collector.url}/v1/metrics"), export_interval_millis=3_600_000
    )
    prometheus = PrometheusMetricReader()
    meter_provider = MeterProvider(metric_readers=[otlp_metrics, prometheus], shutdown_on_exit=False)
    # The reader registers itself in prometheus_client's global registry, which other tests serve and
    # scrape: move it to a registry of its own so nothing recorded here shows up there.
    REGISTRY.unregister(prometheus._collector)
    registry = CollectorRegistry()
    registry.register(prometheus._collector)
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{collector.url}/v1/logs"))
    )
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=logger_provider)
    # OTLP logs: aimon-otel's own (every Python log line, the SDKs' included, is scanned through caplog;
    # on the root logger, opentelemetry-sdk 1.34's handler recurses on an export error)
    logging.getLogger("aimon_otel").addHandler(handler)
    instrumentor = aimon_otel.AimonInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider, key_salt=SALT, capture_content=True
    )
    try:
        calls(fake)
        logging.getLogger("aimon_otel").warning("a log line of the app's, exported over OTLP with the rest")
    finally:
        instrumentor.uninstrument()
        logging.getLogger("aimon_otel").removeHandler(handler)
    exposition = generate_latest(registry)
    meter_provider.force_flush()
    logger_provider.force_flush()
    payloads: dict[str, list[bytes]] = {}
    for path, body in collector.posts:
        payloads.setdefault(path, []).append(body)
    assert set(payloads) == {"/v1/traces", "/v1/metrics", "/v1/logs"}
    exported = {path: b"".join(bodies) for path, bodies in payloads.items()}
    exported["prometheus"] = exposition
    exported["python log"] = (caplog.text + "\n".join(str(r.args) for r in caplog.records)).encode()
    assert b"gpt-4o-mini" in exported["/v1/traces"] and b"[REDACTED]" in exported["/v1/traces"]  # raw, searchable
    assert b"a log line of the app's" in exported["/v1/logs"]
    for where, data in exported.items():
        for key in KEYS:
            assert key.encode() not in data, where
            for piece in windows(key):
                assert piece.encode() not in data, (where, piece)
    # ... while each key's fingerprint is on the spans and the metrics, so spend splits by key
    ids = {key: key_fingerprint(key, SALT) for key in KEYS}
    assert len(set(ids.values())) == len(KEYS) and all(len(i) == 12 for i in ids.values())
    for key_id in ids.values():
        assert key_id.encode() in exported["/v1/traces"]
        assert key_id.encode() in exported["/v1/metrics"]
    cost_lines = [line for line in exposition.decode().splitlines() if line.startswith("gen_ai_usage_cost_USD_sum")]
    by_key = {line.split('aimon_api_key_id="')[1][:12]: float(line.rsplit(" ", 1)[1]) for line in cost_lines}
    # gpt-4o-mini $0.000033 a call (two on the first key, one on the second); claude-haiku-4-5 $0.00082
    expected = {ids[OPENAI_KEY]: 2 * 0.000033, ids[OTHER_OPENAI_KEY]: 0.000033, ids[ANTHROPIC_KEY]: 0.00082}
    if HAS_GEMINI:
        expected[ids[GEMINI_KEY]] = 2 * 0.000542  # gemini-2.5-flash, a call and a stream
    assert by_key == pytest.approx(expected)


def test_no_salt_no_key_id(fake: FakeProvider) -> None:
    telemetry = make_telemetry()
    try:
        openai.OpenAI(base_url=fake.openai_base_url, api_key=OPENAI_KEY, max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
    finally:
        telemetry.instrumentor.uninstrument()
    (span,) = telemetry.spans()
    assert "aimon.api_key.id" not in span.attributes
    assert all("aimon.api_key.id" not in p.attributes for p in telemetry.points("gen_ai.usage.cost"))


def test_key_id_on_the_command_line_is_what_the_app_records() -> None:
    cli = str(Path(sys.executable).with_name("aimon-otel"))
    env = {"AIMON_KEY_SALT": SALT, "PATH": "/usr/bin:/bin"}
    given = subprocess.run([cli, "key-id", OPENAI_KEY], capture_output=True, text=True, env=env, check=True)
    piped = subprocess.run(
        [cli, "key-id", "-"], input=OPENAI_KEY + "\n", capture_output=True, text=True, env=env, check=True
    )
    assert given.stdout == piped.stdout == key_fingerprint(OPENAI_KEY, SALT) + "\n"
    unsalted = subprocess.run(
        [cli, "key-id", OPENAI_KEY], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}
    )
    assert unsalted.returncode == 2
    assert "AIMON_KEY_SALT is not set" in unsalted.stderr and OPENAI_KEY not in unsalted.stderr
