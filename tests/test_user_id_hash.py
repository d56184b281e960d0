"""AIMON_USER_ID_HASH: user.id is hashed before it leaves the process, on spans, metrics and ledger keys alike."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import openai
import pytest

import aimon_otel
from aimon_otel import AimonConfigError, Settings
from aimon_otel.cli import main as cli
from tests.conftest import MESSAGES, make_telemetry
from tests.tools import RedisServer

KEY = "deployment-secret-1"
RAW = "alice@example.com"
HASHED = hmac.new(KEY.encode(), RAW.encode(), hashlib.sha256).hexdigest()[:16]


def test_user_id_is_hashed_everywhere_and_status_takes_the_raw_id(
    tmp_path: Path, client: openai.OpenAI, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets: [{name: per-user, for_each: user_id, limit_usd: 1, period: day}]\n")
    with RedisServer(tmp_path) as server:
        telemetry = make_telemetry(
            budgets=str(budgets),
            budget_ledger=server.url,
            user_id_hash="hmac-sha256",
            user_id_key=KEY,
            metrics_include_user=True,
        )
        try:
            with aimon_otel.attributes(tenant_id="acme", user_id=RAW):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            (status,) = aimon_otel.budget_status(user_id=RAW)
            assert status.key == HASHED and status.spent > 0
            exported = json.dumps([dict(s.attributes) for s in telemetry.spans()])
            exported += json.dumps([dict(p.attributes) for p in telemetry.points("gen_ai.usage.cost")])
            exported += json.dumps([dict(p.attributes) for p in telemetry.points("aimon.budget.spent")])
        finally:
            telemetry.instrumentor.uninstrument()
        assert HASHED in exported and RAW not in exported and "alice" not in exported
        import redis

        keys = [key.decode() for key in redis.Redis.from_url(server.url).keys("*")]
        assert any(key.endswith("|" + HASHED) for key in keys) and not any("alice" in key for key in keys)
        monkeypatch.setenv("AIMON_USER_ID_HASH", "hmac-sha256")
        monkeypatch.setenv("AIMON_USER_ID_KEY", KEY)
        assert cli(["budgets", "status", str(budgets), "--ledger", server.url, "--user", RAW, "--json"]) == 0
        (row,) = json.loads(capsys.readouterr().out)
        assert row["key"] == HASHED


def test_hashing_without_a_key_leaves_user_ids_out(
    client: openai.OpenAI, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(AimonConfigError, match="needs a secret key in AIMON_USER_ID_KEY"):
        Settings.load(user_id_hash="hmac-sha256")
    monkeypatch.setenv("AIMON_USER_ID_HASH", "hmac-sha256")  # as under opentelemetry-instrument: lenient
    telemetry = make_telemetry()
    try:
        with aimon_otel.attributes(tenant_id="acme", user_id=RAW):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        telemetry.instrumentor.uninstrument()
    assert any("left out of telemetry" in r.getMessage() for r in caplog.records)
    span = telemetry.span()
    assert "user.id" not in span.attributes and span.attributes["tenant.id"] == "acme"


def test_the_key_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    Settings.load({"AIMON_USER_ID_HASH": "sha1", "AIMON_USER_ID_KEY": "topsecret-key"})
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "AIMON_USER_ID_HASH='sha1'" in text and "hmac-sha256" in text and "topsecret-key" not in text
