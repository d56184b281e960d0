"""How old the prices are: the gauge the stale-price alert reads, and ``aimon-otel pricing check``'s warnings."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from importlib.metadata import version
from pathlib import Path

import pytest
import time_machine
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from aimon_otel import cli
from aimon_otel.config import AimonConfigError
from aimon_otel.pricing import load_overrides
from aimon_otel.pricing.freshness import GENAI_PRICES_RELEASED, catalog_data
from tests.conftest import make_telemetry

INSTALLED = version("genai-prices")
RELEASED = GENAI_PRICES_RELEASED[INSTALLED]


def gauge(reader: InMemoryMetricReader) -> dict[tuple[str, str], float]:
    data = reader.get_metrics_data()
    found: dict[tuple[str, str], float] = {}
    for resource_metrics in data.resource_metrics if data else []:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "aimon.pricing.data.timestamp":
                    assert metric.unit == "s"
                    for point in metric.data.data_points:
                        key = (
                            str(point.attributes["aimon.pricing.source"]),
                            str(point.attributes["aimon.pricing.version"]),
                        )
                        found[key] = point.value
    return found


def midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def test_the_gauge_gives_the_release_day_and_the_files_checked_day(tmp_path: Path) -> None:
    made = make_telemetry()
    try:
        assert gauge(made.reader) == {("genai-prices", INSTALLED): midnight(RELEASED)}
    finally:
        made.instrumentor.uninstrument()
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "checked: 2026-09-15\nmodels:\n  - {model: ft-x, provider: openai, prices: {input_mtok: 1, output_mtok: 2}}\n"
    )
    made = make_telemetry(pricing_file=str(prices))
    try:
        assert gauge(made.reader) == {
            ("genai-prices", INSTALLED): midnight(RELEASED),
            ("override", str(prices)): midnight(date(2026, 9, 15)),
        }
    finally:
        made.instrumentor.uninstrument()


def test_a_file_with_prices_and_no_checked_day_has_no_series(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("multipliers:\n  - {provider: openai, factor: 0.8}\n")
    made = make_telemetry(pricing_file=str(prices))
    try:
        assert gauge(made.reader) == {("genai-prices", INSTALLED): midnight(RELEASED)}
    finally:
        made.instrumentor.uninstrument()


def test_releases_newer_or_older_than_the_table() -> None:
    newest = max(GENAI_PRICES_RELEASED.values())
    newer = catalog_data("0.9.1")
    assert newer.as_of == newest and "newer than this aimon-otel knows" in newer.basis
    older = catalog_data("0.0.1")
    assert older.as_of is None and "release date unknown" in older.basis


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    code = cli.main(["pricing", "check", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_pricing_check_warns_past_60_days(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIMON_PRICING_FILE", raising=False)
    with time_machine.travel(datetime(RELEASED.year, RELEASED.month, RELEASED.day, 12, tzinfo=UTC)) as traveller:
        traveller.shift(60 * 86400)
        code, payload = check(capsys)
        assert code == 0 and payload["warnings"] == []
        assert payload["price_data"] == [
            {"source": "genai-prices", "name": INSTALLED, "as_of": RELEASED.isoformat(), "age_days": 60}
        ]
        traveller.shift(86400)
        code, payload = check(capsys)
        assert code == 0
        assert payload["warnings"] == [
            f"prices are 61 days old (genai-prices {INSTALLED}, released {RELEASED}), over 60 days: "
            "upgrade it (pip install -U genai-prices)"
        ]
        code, _ = check(capsys, "--strict")
        assert code == 1
        code, payload = check(capsys, "--stale-after", "90")
        assert code == 0 and payload["warnings"] == []


def test_pricing_check_on_an_override_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prices = tmp_path / "prices.yaml"
    body = "models:\n  - {model: ft-x, provider: openai, prices: {input_mtok: 1, output_mtok: 2}}\n"
    prices.write_text(body)
    with time_machine.travel(datetime(2026, 11, 20, tzinfo=UTC)):
        code, payload = check(capsys, str(prices))
        assert code == 0
        assert payload["warnings"] == [
            f"{prices}: its prices have no 'checked:' date, so their age is unknown; add 'checked: 2026-11-20' "
            "at the top level once you have compared them with the provider's"
        ]
        prices.write_text("checked: 2026-08-01\n" + body)
        code, payload = check(capsys, str(prices))
        assert payload["warnings"] == [
            f"prices are 111 days old ({prices}: checked 2026-08-01), over 60 days: compare them with the "
            "provider's price page and update 'checked:'"
        ]
        assert cli.main(["pricing", "check", str(prices)]) == 0
        text = capsys.readouterr().out
        assert f"prices: {prices}: checked 2026-08-01 (111 days ago)" in text
        assert "warning: prices are 111 days old" in text


@pytest.mark.parametrize(
    ("checked", "message"),
    [
        ("2031-01-01", "'checked' is 2031-01-01, in the future"),
        ("last week", "'checked' must be a date like 2025-01-31, got 'last week'"),
    ],
)
def test_a_bad_checked_day_is_refused(tmp_path: Path, checked: str, message: str) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(f"checked: {checked}\n")
    with pytest.raises(AimonConfigError, match=message):
        load_overrides(prices)
