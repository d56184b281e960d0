"""Configuration: lenient from the environment (zero-code must never fail), strict in code and the CLI."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from aimon_otel import AimonConfigError, Settings
from aimon_otel.cli import main as cli_main
from aimon_otel.testing import FakeProvider
from aimon_otel.testing.console import read_console_spans
from tests.conftest import zero_code_environment

BAD_VALUES = [
    ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "maybe", "capture_content", "SPAN_ONLY"),
    ("AIMON_CAPTURE_CONTENT_MAX_CHARS", "-3", "content_max_chars", "positive whole number"),
    ("AIMON_OPENAI_STREAM_USAGE", "sometimes", "openai_stream_usage", "'true' or 'false'"),
    ("AIMON_METRICS_INCLUDE_USER", "2", "metrics_include_user", "'true' or 'false'"),
    ("AIMON_ENRICH_SPANS", "enabled", "enrich_spans", "'true' or 'false'"),
    ("AIMON_METRICS_MAX_VALUES", "lots", "metrics_max_values", "positive whole number"),
    ("AIMON_INSTRUMENT", "openai,watsonx", "instrument", "'groq', 'mistralai', 'ollama', 'cohere', 'litellm'"),
    ("AIMON_BUDGET_LEDGER", "mysql://db", "budget_ledger", "redis://localhost:6379/0"),
    ("AIMON_BUDGET_FAIL", "maybe", "budget_fail", "'open' (let calls through) or 'closed'"),
]


@pytest.mark.parametrize(("variable", "value", "name", "accepted"), BAD_VALUES)
def test_bad_environment_value_is_logged_and_the_default_used(
    variable: str, value: str, name: str, accepted: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.load({variable: value})
    assert getattr(settings, name) == getattr(Settings(), name)
    messages = [r.getMessage() for r in caplog.records if variable in r.getMessage()]
    assert len(messages) == 1
    assert repr(value) in messages[0] and accepted in messages[0] and "using the default" in messages[0]
    Settings.load({variable: value})  # the same bad value again: not logged again
    assert len([r for r in caplog.records if variable in r.getMessage()]) == 1


@pytest.mark.parametrize(("variable", "value", "name", "accepted"), BAD_VALUES)
def test_bad_environment_value_is_an_error_when_strict(variable: str, value: str, name: str, accepted: str) -> None:
    with pytest.raises(AimonConfigError) as info:
        Settings.load({variable: value}, strict=True)
    assert variable in str(info.value) and repr(value) in str(info.value) and accepted in str(info.value)


@pytest.mark.parametrize(
    ("value", "captured"),
    [
        ("SPAN_ONLY", True),
        ("span_and_event", True),
        ("EVENT_ONLY", False),  # content in events only: aimon-otel puts none on spans
        ("NO_CONTENT", False),
        ("true", True),
        ("False", False),
        ("", False),  # empty means unset
        ("  ", False),
    ],
)
def test_every_content_mode_of_the_conventions_is_accepted(
    value: str, captured: bool, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.load({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": value}, strict=True)
    assert settings.capture_content is captured
    assert caplog.records == []


def test_empty_values_mean_unset() -> None:
    env = {"AIMON_CAPTURE_CONTENT_MAX_CHARS": "", "AIMON_INSTRUMENT": " ", "AIMON_PRICING_FILE": ""}
    assert Settings.load(env, strict=True) == Settings(strict=True)


@pytest.mark.parametrize(
    ("setting", "value", "fragment"),
    [
        ("capture_content", "maybe", "SPAN_ONLY"),
        ("capture_content", 1, "True, False"),
        ("content_max_chars", 0, "positive whole number"),
        ("metrics_max_values", "lots", "positive whole number"),
        ("enrich_spans", "yes", "True or False"),
        ("instrument", ["openai", "gemini"], "unknown SDK"),
        ("pricing_file", "", "non-empty string"),
    ],
)
def test_bad_value_in_code_raises(setting: str, value: Any, fragment: str) -> None:
    with pytest.raises(AimonConfigError) as info:
        Settings.load({}, **{setting: value})
    assert setting in str(info.value) and fragment in str(info.value)


def test_a_bad_pricing_file_in_code_raises_but_from_the_environment_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.conftest import make_telemetry

    bad = tmp_path / "prices.yaml"
    bad.write_text("models: [{model: x, prices: {input_mtok: -1, output_mtok: 1}}]\n")
    with pytest.raises(AimonConfigError, match="input_mtok must not be negative"):
        make_telemetry(pricing_file=str(bad))
    monkeypatch.setenv("AIMON_PRICING_FILE", str(bad))
    made = make_telemetry()
    made.instrumentor.uninstrument()
    (message,) = [r.getMessage() for r in caplog.records if "prices.yaml" in r.getMessage()]
    assert "input_mtok must not be negative" in message and "going on without it" in message


def test_cli_is_strict_about_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIMON_PRICING_FILE", "/nonexistent/prices.yaml")
    assert cli_main(["price", "gpt-4o-mini"]) == 2
    assert "cannot read the pricing file" in capsys.readouterr().err


APP = textwrap.dedent(
    """
    import anthropic, openai
    HI = [{"role": "user", "content": "hi"}]
    openai.OpenAI(max_retries=0).chat.completions.create(model="gpt-4o-mini", messages=HI)
    native = {"open_telemetry": False} if hasattr(anthropic, "_tracing") else {}
    anthropic.Anthropic(max_retries=0, **native).messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HI)
    print("app done")
    """
)


def run_zero_code(fake: FakeProvider, tmp_path: Path, **env: str) -> tuple[list[dict[str, Any]], str]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    environment = zero_code_environment(fake, **env)
    command = [str(Path(sys.executable).with_name("opentelemetry-instrument")), sys.executable, str(app)]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "app done" in result.stdout
    spans = [s for s in read_console_spans(result.stdout) if "gen_ai.operation.name" in s["attributes"]]
    return spans, result.stderr


def test_zero_code_with_every_setting_bad_still_instruments(fake: FakeProvider, tmp_path: Path) -> None:
    bad = {variable: value for variable, value, _, _ in BAD_VALUES}
    spans, stderr = run_zero_code(
        fake,
        tmp_path,
        **bad,
        AIMON_PRICING_FILE=str(tmp_path / "missing.yaml"),
        AIMON_TENANT_RESOLVER="no_such_module:resolve",
        AIMON_BUDGETS=str(tmp_path / "missing-budgets.yaml"),
    )
    assert [s["attributes"]["gen_ai.provider.name"] for s in spans] == ["openai", "anthropic"]
    assert all(s["attributes"]["aimon.pricing.status"] == "priced" for s in spans)
    for variable, value, _, _ in BAD_VALUES:
        assert f"{variable}={value!r}" in stderr
    assert "missing.yaml" in stderr and "no_such_module:resolve" in stderr and "missing-budgets.yaml" in stderr
    assert "Traceback" not in stderr


def test_aimon_instrument_picks_the_sdks(fake: FakeProvider, tmp_path: Path) -> None:
    spans, _ = run_zero_code(fake, tmp_path, AIMON_INSTRUMENT="anthropic")
    assert [s["attributes"]["gen_ai.provider.name"] for s in spans] == ["anthropic"]


def test_otel_disabled_instrumentations_is_honoured(fake: FakeProvider, tmp_path: Path) -> None:
    spans, _ = run_zero_code(fake, tmp_path, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="aimon")
    assert spans == []
    spans, _ = run_zero_code(fake, tmp_path, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="requests, flask")
    assert len(spans) == 2


def test_every_setting_is_documented() -> None:
    from aimon_otel import config

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    variables = [value for name, value in vars(config).items() if name.endswith("_ENV")]
    assert len(variables) == len(Settings.__dataclass_fields__) - 2  # all but strict and given_in_code
    for variable in variables:
        assert f"`{variable}`" in readme, f"{variable} is not in the README's configuration table"
