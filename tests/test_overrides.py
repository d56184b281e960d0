"""Price overrides: custom models, aliases, dated prices, multipliers, and clear errors for bad files."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import openai
import pytest

from aimon_otel import AimonConfigError, PricingEngine
from aimon_otel.instrumentation.usage import Usage
from aimon_otel.pricing import load_overrides
from tests.conftest import MESSAGES, make_telemetry

M = Decimal(1_000_000)
OVERRIDES_YAML = """
aliases:
  - {model: prod-gpt4o, target: gpt-4o, provider: azure.ai.openai}
models:
  - model: ft:gpt-4o-mini:acme::x1
    provider: openai
    prices:
      - {input_mtok: 0.30, output_mtok: 1.20, cache_read_mtok: 0.15, effective_to: 2026-01-01}
      - {input_mtok: 0.25, output_mtok: 1.00, cache_read_mtok: 0.125, effective_from: 2026-01-01}
multipliers:
  - {provider: openai, model: "gpt-4o*", factor: 0.8}
"""
USAGE = Usage(input_tokens=120, output_tokens=30, cache_read_input_tokens=40)


@pytest.fixture
def overrides_file(tmp_path: Path) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(OVERRIDES_YAML)
    return path


def test_custom_model_with_dated_prices(overrides_file: Path) -> None:
    engine = PricingEngine(load_overrides(overrides_file))
    old = engine.price("openai", "ft:gpt-4o-mini:acme::x1", USAGE, at=datetime(2025, 12, 31, 23, tzinfo=UTC))
    new = engine.price("openai", "ft:gpt-4o-mini:acme::x1", USAGE, at=datetime(2026, 1, 1, 0, tzinfo=UTC))
    assert old.total == (80 * Decimal("0.30") + 40 * Decimal("0.15") + 30 * Decimal("1.20")) / M
    assert new.total == (80 * Decimal("0.25") + 40 * Decimal("0.125") + 30 * Decimal("1.00")) / M
    assert old.model == "ft:gpt-4o-mini:acme::x1"


def test_alias_and_multiplier(overrides_file: Path) -> None:
    engine = PricingEngine(load_overrides(overrides_file))
    # prod-gpt4o is an Azure deployment of gpt-4o (genai-prices: input 2.50, cached 1.25, output 10 per million).
    azure = engine.price("azure.ai.openai", "prod-gpt4o", USAGE)
    assert azure.total == (80 * Decimal("2.5") + 40 * Decimal("1.25") + 30 * Decimal("10")) / M
    # openai gpt-4o* gets the negotiated 20% off; gpt-4.1 does not match the pattern.
    discounted = engine.price("openai", "gpt-4o-mini", USAGE)
    assert discounted.total == Decimal("0.000033") * Decimal("0.8")
    assert engine.price("openai", "gpt-4.1", Usage(input_tokens=1_000_000, output_tokens=0)).total == Decimal(2)


def test_toml_file_and_env_var_reach_the_instrumentation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: openai.OpenAI
) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('[[models]]\nmodel = "house-model"\nprices = [{input_mtok = 1, output_mtok = 2}]\n')
    monkeypatch.setenv("AIMON_PRICING_FILE", str(path))
    telemetry = make_telemetry()
    try:
        client.chat.completions.create(model="house-model", messages=MESSAGES)
    finally:
        telemetry.instrumentor.uninstrument()
    assert telemetry.span().attributes["gen_ai.usage.cost"] == float((120 * 1 + 30 * 2) / M)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.yaml", "models: [\n", "not valid YAML"),
        ("bad.toml", "models = [", "not valid TOML"),
        ("bad.json", "{}", "use .yaml, .yml or .toml"),
        ("top.yaml", "- 1\n", "top level must be a mapping"),
        ("section.yaml", "modles: []\n", "unknown section(s) ['modles']"),
        ("alias.yaml", "aliases:\n  - {model: a}\n", "aliases[0]: missing ['target']"),
        (
            "noout.yaml",
            "models:\n  - {model: m, prices: [{input_mtok: 1}]}\n",
            "models[0].prices[0]: needs both input_mtok and output_mtok",
        ),
        (
            "nan.yaml",
            "models:\n  - {model: m, prices: [{input_mtok: abc, output_mtok: 1}]}\n",
            "'input_mtok' must be a number, got 'abc'",
        ),
        (
            "neg.yaml",
            "models:\n  - {model: m, prices: [{input_mtok: -1, output_mtok: 1}]}\n",
            "input_mtok must not be negative",
        ),
        (
            "key.yaml",
            "models:\n  - {model: m, prices: [{input_mtok: 1, output_mtok: 1, inptu: 2}]}\n",
            "unknown key(s) ['inptu']",
        ),
        (
            "date.yaml",
            "models:\n  - {model: m, prices: [{input_mtok: 1, output_mtok: 1, effective_from: soon}]}\n",
            "must be a date like 2025-01-31",
        ),
        (
            "order.yaml",
            "models:\n  - {model: m, prices: [{input_mtok: 1, output_mtok: 1, "
            "effective_from: 2026-02-01, effective_to: 2026-01-01}]}\n",
            "must be after effective_from",
        ),
        (
            "overlap.yaml",
            "models:\n  - {model: m, prices: [{input_mtok: 1, output_mtok: 1}, "
            "{input_mtok: 2, output_mtok: 2, effective_from: 2026-01-01}]}\n",
            "dates overlap another price",
        ),
        ("factor.yaml", "multipliers:\n  - {factor: 0}\n", "multipliers[0]: factor must be above 0"),
        # numbers that are not prices: YAML reads 1e400 as text, which Decimal takes as finite but huge
        ("huge.yaml", "models:\n  - {model: m, prices: {input_mtok: 1e400, output_mtok: 1}}\n", "above 100000"),
        ("inf.yaml", "models:\n  - {model: m, prices: {input_mtok: .inf, output_mtok: 1}}\n", "finite number"),
        ("nan.yaml", "models:\n  - {model: m, prices: {input_mtok: .nan, output_mtok: 1}}\n", "finite number"),
        ("nan-text.yaml", "models:\n  - {model: m, prices: {input_mtok: 1, output_mtok: nan}}\n", "finite number"),
        ("inf.toml", "[[models]]\nmodel = 'm'\nprices = {input_mtok = 1e400, output_mtok = 1}\n", "finite number"),
        ("neg-out.yaml", "models:\n  - {model: m, prices: {input_mtok: 1, output_mtok: -0.5}}\n", "must not be"),
        ("big-factor.yaml", "multipliers:\n  - {factor: 1e400}\n", "at most 100"),
        (
            "twice.yaml",
            "models:\n  - {model: m, prices: {input_mtok: 1, output_mtok: 1}}\n"
            "  - {model: n, prices: {input_mtok: 1, output_mtok: 1}}\n"
            "  - {model: m, prices: {input_mtok: 2, output_mtok: 2}}\n",
            "models[2]: model 'm' is already priced at ",
        ),
        (
            "alias-twice.yaml",
            "aliases:\n  - {model: a, target: gpt-4o}\n  - {model: a, target: gpt-4o-mini}\n",
            "aliases[1]: model 'a' is already aliased at ",
        ),
        (
            "cycle.yaml",
            "aliases:\n  - {model: a, target: b}\n  - {model: b, target: c}\n  - {model: c, target: a}\n",
            "aliases form a cycle (a -> b -> c -> a)",
        ),
        ("self.yaml", "aliases:\n  - {model: a, target: a}\n", "aliases form a cycle (a -> a)"),
    ],
)
def test_bad_file_names_file_entry_and_fix(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(AimonConfigError) as info:
        load_overrides(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_file_fails_at_instrument_in_code(tmp_path: Path) -> None:
    with pytest.raises(AimonConfigError, match=r"nope\.yaml: cannot read the pricing file"):
        make_telemetry(pricing_file=str(tmp_path / "nope.yaml"))


def test_duplicate_model_names_both_places(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(
        "models:\n  - {model: m, provider: openai, prices: {input_mtok: 1, output_mtok: 1}}\n"
        "  - {model: m, provider: openai, prices: {input_mtok: 2, output_mtok: 2}}\n"
    )
    with pytest.raises(AimonConfigError) as info:
        load_overrides(path)
    assert f"{path}: models[1]" in str(info.value) and f"{path}: models[0]" in str(info.value)


def test_alias_chains_are_followed(tmp_path: Path) -> None:
    path = tmp_path / "chain.yaml"
    path.write_text("aliases:\n  - {model: prod, target: staging}\n  - {model: staging, target: gpt-4o-mini}\n")
    engine = PricingEngine(load_overrides(path))
    assert engine.price("openai", "prod", USAGE).total == Decimal("0.000033")


def test_a_huge_price_never_becomes_an_infinite_cost() -> None:
    from aimon_otel.pricing.overrides import Overrides

    with pytest.raises(AimonConfigError, match="above 100000"):
        Overrides().model("m", input_mtok="1e400", output_mtok=1)
