"""Prices that update while the app runs: genai-prices' updater fetching from a loopback server that
serves the bundled data, then a copy with three prices changed and one model added, then a 500 and a
malformed file. Exact notices; calls priced with the prices in force when they started."""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from aimon_otel import PricingEngine
from aimon_otel.cli import main
from aimon_otel.instrumentation.usage import Usage
from aimon_otel.pricing.catalog import utc_now
from aimon_otel.pricing.changes import PriceChange
from aimon_otel.pricing.data_files import bundled_providers, parse_providers, raw_providers
from aimon_otel.pricing.updates import PriceListeners, PriceUpdater
from aimon_otel.testing.fake_provider import _QuietServer

BUNDLED = raw_providers(bundled_providers())
USAGE = Usage(input_tokens=1_000_000, output_tokens=1_000_000)


def changed_copy() -> list[Any]:
    """The bundled data with gpt-4o-mini's input and output and claude-haiku-4-5's output changed, and a
    model added to OpenAI."""
    data = copy.deepcopy(BUNDLED)
    openai = next(p for p in data if p["id"] == "openai")
    mini = next(m for m in openai["models"] if m["id"] == "gpt-4o-mini")
    mini["prices"]["input_mtok"] = "0.2"
    mini["prices"]["output_mtok"] = "0.5"
    anthropic = next(p for p in data if p["id"] == "anthropic")
    haiku = next(m for m in anthropic["models"] if m["id"] == "claude-haiku-4-5")
    haiku["prices"]["output_mtok"] = "4.5"
    openai["models"].append(
        {
            "id": "gpt-9-preview",
            "match": {"equals": "gpt-9-preview"},
            "prices": {"input_mtok": "7", "output_mtok": "21"},
        }
    )
    return data


class DataServer:
    """Serves whatever ``body`` holds (bytes), with ``status``."""

    def __init__(self) -> None:
        self.body = json.dumps(BUNDLED).encode()
        self.status = 200
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                self.send_response(server.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/data.json"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def server() -> Iterator[DataServer]:
    from genai_prices import data_snapshot

    running = DataServer()
    yield running
    running.close()
    data_snapshot.set_custom_snapshot(None)  # genai-prices' own global: other tests price with the bundled data


def price(engine: PricingEngine, model: str, provider: str, **kwargs: Any) -> Decimal | None:
    return engine.price(provider, model, USAGE, **kwargs).total


def test_the_bundled_data_round_trips_through_its_json() -> None:
    assert parse_providers(json.loads(json.dumps(BUNDLED)), "bundled") == bundled_providers()


def test_an_update_gives_exact_notices_and_prices_calls_that_start_after_it(
    server: DataServer, caplog: pytest.LogCaptureFixture
) -> None:
    engine = PricingEngine()
    reader = InMemoryMetricReader()
    listeners = PriceListeners()
    heard: list[PriceChange] = []
    listeners.subscribe(heard.append)
    assert price(engine, "gpt-4o-mini", "openai") == Decimal("0.75")  # in use: its notice is logged
    updater = PriceUpdater(
        engine.catalog, 0.2, server.url, MeterProvider(metric_readers=[reader]).get_meter("t"), listeners
    )
    try:
        assert updater.wait_for_update(1, 30)
        assert heard == []  # the bundled data again: nothing changed
        started_before = utc_now()
        server.body = json.dumps(changed_copy()).encode()
        with caplog.at_level(logging.INFO, logger="aimon_otel"):
            assert updater.wait_for_update(2, 30)
        assert [change.describe().split(" (USD")[0] for change in heard] == [
            "anthropic/claude-haiku-4-5: output_mtok 5 -> 4.5",
            "openai/gpt-4o-mini: input_mtok 0.15 -> 0.2, output_mtok 0.6 -> 0.5",
            "openai/gpt-9-preview added (input_mtok 7, output_mtok 21)",
        ]
        assert caplog.text.count("aimon-otel: price change:") == 1 and "gpt-4o-mini: input_mtok" in caplog.text
        assert "2 other models' prices changed" in caplog.text
        # a call that started before the new prices landed keeps the old ones; the next one gets the new
        assert price(engine, "gpt-4o-mini", "openai", at=started_before) == Decimal("0.75")
        assert price(engine, "gpt-4o-mini", "openai") == Decimal("0.7")
        # the same by epoch seconds, as the instrumentation asks: the new price kept is not used for an earlier start
        assert price(engine, "gpt-4o-mini", "openai", at=time.time()) == Decimal("0.7")
        assert price(engine, "gpt-4o-mini", "openai", at=started_before.timestamp()) == Decimal("0.75")
        assert price(engine, "gpt-9-preview", "openai") == Decimal("28")
        points = gauge(reader)
        assert points == {
            ("openai", "gpt-4o-mini", "input_mtok", "0.15", "0.2"),
            ("openai", "gpt-4o-mini", "output_mtok", "0.6", "0.5"),
        }

        server.status = 500  # a failed fetch keeps the prices in use
        server.body = b'{"error": "boom"}'
        hits = server.hits
        wait_until(lambda: server.hits >= hits + 2)
        server.status, server.body = 200, json.dumps(changed_copy()).encode()[:5000]  # truncated
        wait_until(lambda: server.hits >= hits + 4)
        server.body = b"[]"
        wait_until(lambda: server.hits >= hits + 6)
        assert updater.updates == 2
        assert price(engine, "gpt-4o-mini", "openai") == Decimal("0.7")
    finally:
        updater.close()


def gauge(reader: InMemoryMetricReader) -> set[tuple[str, ...]]:
    data = reader.get_metrics_data()
    found = set()
    for resource_metrics in data.resource_metrics if data else []:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "aimon.pricing.change":
                    for point in metric.data.data_points:
                        a = dict(point.attributes or {})
                        found.add(
                            (
                                str(a["aimon.pricing.provider"]),
                                str(a["aimon.pricing.model"]),
                                str(a["aimon.price.name"]),
                                str(a["aimon.price.old"]),
                                str(a["aimon.price.new"]),
                            )
                        )
    return found


def wait_until(condition: Any, seconds: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_stale_gauge_follows_the_fetch(server: DataServer) -> None:
    from aimon_otel.pricing.freshness import price_data

    engine = PricingEngine()
    assert price_data(engine)[0].name != f"fetched from {server.url}"
    updater = PriceUpdater(engine.catalog, 0.2, server.url, MeterProvider().get_meter("t"), PriceListeners())
    try:
        assert updater.wait_for_update(1, 30)
    finally:
        updater.close()
    entry = price_data(engine)[0]
    assert entry.name == f"fetched from {server.url}" and entry.as_of == utc_now().date()
    assert (utc_now().date() - entry.as_of) < timedelta(days=1)


def test_pricing_diff_prints_the_changes_between_two_data_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = tmp_path / "new.json"
    new.write_text(json.dumps(changed_copy()))
    assert main(["pricing", "diff", "bundled", str(new)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (USD")[0] for line in lines] == [
        "anthropic/claude-haiku-4-5: output_mtok 5 -> 4.5",
        "openai/gpt-4o-mini: input_mtok 0.15 -> 0.2, output_mtok 0.6 -> 0.5",
        "openai/gpt-9-preview added (input_mtok 7, output_mtok 21)",
        "3 models changed",
    ]
    assert main(["pricing", "diff", str(new), str(new)]) == 0
    assert capsys.readouterr().out.strip() == "no price changed"
    (tmp_path / "bad.json").write_text('{"not": "prices"}')
    assert main(["pricing", "diff", "bundled", str(tmp_path / "bad.json")]) == 2
    assert "not genai-prices data" in capsys.readouterr().err


def test_pricing_export_writes_the_bundled_data_that_diff_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pricing", "export"]) == 0
    exported = tmp_path / "installed.json"
    exported.write_text(capsys.readouterr().out)
    assert json.loads(exported.read_text()) == BUNDLED
    assert main(["pricing", "diff", str(exported), "bundled"]) == 0
    assert capsys.readouterr().out.strip() == "no price changed"
