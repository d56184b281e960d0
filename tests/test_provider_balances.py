"""Provider balances: the poller against loopback OpenRouter and DeepSeek endpoints, the gauge it feeds,
and what a 401, a 500 and a timeout do (log, back off, never reach the app)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from aimon_otel import AimonConfigError, AimonInstrumentor
from aimon_otel.attribution.privacy import key_fingerprint
from aimon_otel.billing.balances import BalancePoller
from aimon_otel.config import Settings
from aimon_otel.testing.balance_servers import KEY, BalanceServer


def gauge_points(reader: InMemoryMetricReader) -> dict[tuple[Any, ...], float]:
    data = reader.get_metrics_data()
    points: dict[tuple[Any, ...], float] = {}
    for resource_metrics in data.resource_metrics if data else []:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "aimon.provider.balance":
                    for point in metric.data.data_points:
                        attributes = dict(point.attributes or {})
                        key = (
                            attributes["gen_ai.provider.name"],
                            attributes["aimon.balance.kind"],
                            attributes["currency"],
                            attributes.get("aimon.api_key.id"),
                        )
                        points[key] = point.value
    return points


def environment(server: BalanceServer) -> dict[str, str]:
    return {
        "OPENROUTER_API_KEY": KEY,
        "DEEPSEEK_API_KEY": KEY,
        "AIMON_BALANCE_URL_OPENROUTER": server.url,
        "AIMON_BALANCE_URL_DEEPSEEK": server.url + "/",
    }


def test_the_gauge_reads_each_providers_documented_balance() -> None:
    reader = InMemoryMetricReader()
    with BalanceServer() as server:
        poller = BalancePoller(
            ("openrouter", "deepseek"),
            300,
            MeterProvider(metric_readers=[reader]).get_meter("test"),
            environ=environment(server),
            fingerprint=lambda key: key_fingerprint(key, "salt"),
        )
        assert poller.wait_for_round(1, 10)
        key_id = key_fingerprint(KEY, "salt")
        assert gauge_points(reader) == {
            ("openrouter", "account", "USD", key_id): 7.25,  # 100.50 credits - 93.25 used
            ("openrouter", "key_limit", "USD", key_id): 12.5,
            ("deepseek", "account", "CNY", key_id): 110.0,
            ("deepseek", "account", "USD", key_id): 4.2,
        }
        poller.close()


def test_a_key_without_a_limit_reports_the_account_only() -> None:
    reader = InMemoryMetricReader()
    with BalanceServer() as server:
        server.state.openrouter_key_limit_remaining = None
        poller = BalancePoller(
            ("openrouter",), 300, MeterProvider(metric_readers=[reader]).get_meter("t"), environ=environment(server)
        )
        assert poller.wait_for_round(1, 10)
        poller.close()
    assert gauge_points(reader) == {("openrouter", "account", "USD", None): 7.25}


def test_a_401_is_logged_once_and_not_asked_again(caplog: pytest.LogCaptureFixture) -> None:
    reader = InMemoryMetricReader()
    with BalanceServer() as server, caplog.at_level(logging.WARNING, logger="aimon_otel"):
        server.state.mode = "unauthorized"
        poller = BalancePoller(
            ("openrouter",), 300, MeterProvider(metric_readers=[reader]).get_meter("t"), environ=environment(server)
        )
        assert poller.wait_for_round(1, 10)
        poller.close()
        for _ in range(3):
            poller.poll_once()
        assert server.state.hits == {"/api/v1/credits": 1}
    assert caplog.text.count("cannot be read") == 1 and "OPENROUTER_API_KEY" in caplog.text
    assert gauge_points(reader) == {}


def test_failures_back_off_and_keep_the_last_reading(caplog: pytest.LogCaptureFixture) -> None:
    reader = InMemoryMetricReader()
    with BalanceServer() as server, caplog.at_level(logging.WARNING, logger="aimon_otel"):
        poller = BalancePoller(
            ("deepseek",), 60, MeterProvider(metric_readers=[reader]).get_meter("t"), environ=environment(server),
            timeout=0.3,
        )  # fmt: skip
        assert poller.wait_for_round(1, 10)
        poller.close()
        server.state.mode = "failing"
        server.state.deepseek_balances = []
        assert poller.poll_once() == 120  # one failure: twice the interval
        server.state.mode, server.state.delay = "slow", 1.0
        assert poller.poll_once() == 240  # a timeout: four times
    assert caplog.text.count("reading the deepseek balance failed") == 1  # logged on the first failure only
    assert gauge_points(reader)[("deepseek", "account", "CNY", None)] == 110.0


def test_a_missing_key_is_logged_and_nothing_is_polled(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="aimon_otel"):
        poller = BalancePoller(("deepseek",), 300, MeterProvider().get_meter("t"), environ={})
    assert "DEEPSEEK_API_KEY is not set" in caplog.text and poller.rounds == 0


def test_settings_name_the_variable_and_the_accepted_values(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.load(
        {"AIMON_PROVIDER_BALANCES": "openrouter,deepseek", "AIMON_PROVIDER_BALANCES_INTERVAL": "2m"}
    )
    assert settings.provider_balances == ("openrouter", "deepseek") and settings.provider_balances_interval == 120
    with caplog.at_level(logging.WARNING, logger="aimon_otel"):
        lenient = Settings.load({"AIMON_PROVIDER_BALANCES": "anthropic", "AIMON_PROVIDER_BALANCES_INTERVAL": "1s"})
    assert lenient.provider_balances == () and lenient.provider_balances_interval == 300
    assert "accepted: openrouter, deepseek" in caplog.text and "at least 10 seconds" in caplog.text
    with pytest.raises(AimonConfigError, match="openai"):
        AimonInstrumentor().instrument(provider_balances=["openai"])


def test_instrument_starts_and_uninstrument_stops_the_poller(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    with BalanceServer() as server:
        for name, value in environment(server).items():
            monkeypatch.setenv(name, value)
        instrumentor = AimonInstrumentor()
        instrumentor.instrument(meter_provider=MeterProvider(metric_readers=[reader]), provider_balances="openrouter")
        try:
            assert instrumentor.balances is not None and instrumentor.balances.wait_for_round(1, 10)
            assert ("openrouter", "account", "USD", None) in gauge_points(reader)
        finally:
            instrumentor.uninstrument()
        assert instrumentor.balances is None
