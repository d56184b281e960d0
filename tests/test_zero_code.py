"""The zero-code path as a user runs it: ``opentelemetry-instrument python app.py`` in a subprocess."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from aimon_otel.testing import FakeProvider
from aimon_otel.testing import openai_wire as wire
from aimon_otel.testing.console import read_console_spans
from tests.conftest import API_KEY, OPENAI_HAS_RESPONSES, zero_code_environment

ANTHROPIC_TRACES_ITSELF = importlib.util.find_spec("anthropic._tracing") is not None
APP = Path(__file__).parents[1] / "examples" / "app.py"


# examples/app.py asks Gemini twice (a call and a stream) where google-genai is installed
GEMINI = (
    ["chat gemini-2.5-flash"] * 2
    if importlib.util.find_spec("google") and importlib.util.find_spec("google.genai")
    else []
)

# and Amazon Nova through boto3's bedrock-runtime Converse where boto3 is installed
BEDROCK = ["chat us.amazon.nova-lite-v1:0"] if importlib.util.find_spec("boto3") else []


def test_unmodified_app_under_opentelemetry_instrument(fake: FakeProvider) -> None:
    env = zero_code_environment(
        fake,
        AIMON_DEMO_FAKE_PROVIDER="1",
        OTEL_SERVICE_NAME="zero-code-test",
        AIMON_BUDGETS=str(APP.with_name("demo-budgets.yaml")),
    )
    command = [str(Path(sys.executable).with_name("opentelemetry-instrument")), sys.executable, str(APP)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "rate limited: 429" in result.stdout  # the app's own error handling still sees the SDK's error

    spans = [s for s in read_console_spans(result.stdout) if "gen_ai.operation.name" in s["attributes"]]
    names = [s["name"] for s in spans]
    expected = (
        ["chat gpt-4o-mini", "chat gpt-4o"]
        + (["chat gpt-4.1-mini"] if OPENAI_HAS_RESPONSES else [])
        + ["embeddings text-embedding-3-small", "chat gpt-4o-mini", "chat gpt-4o-mini"]
        + (
            ["anthropic.messages.create"] * 2
            if ANTHROPIC_TRACES_ITSELF
            else ["chat claude-haiku-4-5", "chat claude-sonnet-4-6"]
        )
        + GEMINI
        + BEDROCK
        + ["chat initech-finetune-v2"]
        + ["chat gpt-4o-mini"] * 6  # the trial tenant: four sent, the fifth refused, the sixth after its upgrade
        + ["chat gpt-4o-mini"] * 5  # the prepaid tenant: four drawn from its credits, the fifth refused
        + ["chat gpt-4o-mini"]
    )
    assert names == expected
    assert all(s["kind"] == "SpanKind.CLIENT" for s in spans)
    assert all(s["resource"]["attributes"]["service.name"] == "zero-code-test" for s in spans)
    stream = spans[1]["attributes"]
    assert stream["gen_ai.request.stream"] is True
    assert stream["gen_ai.usage.input_tokens"] == wire.PROMPT_TOKENS  # usage requested for the app, and hidden
    failed = spans[-1]
    assert failed["status"]["status_code"] == "ERROR"
    assert failed["attributes"]["error.type"] == "RateLimitError"
    assert API_KEY not in result.stdout + result.stderr
    # priced and attributed with no code change beyond aimon_otel.attributes(...)
    first = spans[0]["attributes"]
    assert first["gen_ai.usage.cost"] == 0.000033 and first["aimon.pricing.model"] == "gpt-4o-mini"
    assert (first["tenant.id"], first["aimon.feature"], first["user.id"]) == ("acme", "support_reply", "alice")
    # anthropic: the SDK's own span (anthropic 2.x) or ours (older), priced and attributed either way;
    # claude-haiku-4-5 at $1 input, $0.10 cache read, $1.25/$2 cache write 5m/1h, $5 output per million
    initech_at = names.index("chat initech-finetune-v2")
    haiku = spans[initech_at - 2 - len(GEMINI) - len(BEDROCK)]["attributes"]
    assert haiku["gen_ai.usage.cost"] == 0.00082 and haiku["tenant.id"] == "acme"
    assert haiku["aimon.feature"] == "email_draft" and haiku["gen_ai.usage.input_tokens"] == 600
    refused, upgraded, used_up = spans[-8], spans[-7], spans[-2]
    assert refused["attributes"]["error.type"] == "aimon.budget_exceeded"
    assert refused["attributes"]["aimon.budget.name"] == "trial-monthly"
    assert "gen_ai.usage.cost" not in refused["attributes"]
    assert "budget refused call 5: LLM budget 'trial-monthly' for trial is spent" in result.stdout
    assert upgraded["attributes"]["gen_ai.usage.cost"] == 0.000033  # sent once on the pro plan, no restart
    assert "budget trial call 6: sent" in result.stdout
    assert used_up["attributes"]["aimon.budget.name"] == "prepaid-credits"
    assert "credits used up at call 5: HTTP 402" in result.stdout
    # globex passes half its $0.0002 with the Responses call (openai 1.40 has no Responses API)
    assert ("budget warning: globex-daily" in result.stdout) == OPENAI_HAS_RESPONSES
    for bedrock in spans[initech_at - len(BEDROCK) : initech_at]:  # priced from Converse's usage
        a = bedrock["attributes"]
        assert (a["gen_ai.provider.name"], a["tenant.id"], a["aimon.feature"]) == ("aws.bedrock", "acme", "summaries")
        assert a["gen_ai.usage.input_tokens"] > 0 and a["aimon.pricing.status"] == "priced"
        assert "zero-code-secret" not in result.stdout + result.stderr
    gemini_at = initech_at - len(BEDROCK)
    for gemini in spans[gemini_at - len(GEMINI) : gemini_at]:  # an agent in a conversation, priced
        a = gemini["attributes"]
        assert (a["gen_ai.agent.name"], a["gen_ai.conversation.id"], a["tenant.id"]) == ("research-bot", "c-42", "acme")
        assert a["gen_ai.usage.cost"] == 0.000542 and a["gen_ai.provider.name"] == "gcp.gemini"
    unknown = spans[initech_at]["attributes"]
    assert unknown["aimon.pricing.status"] == "unknown_model" and "gen_ai.usage.cost" not in unknown
