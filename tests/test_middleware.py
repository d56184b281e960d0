"""BudgetExceeded in a request handler becomes HTTP 429 with a JSON body and Retry-After (WSGI on real
HTTP through wsgiref; ASGI through the protocol's own messages)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import openai
import pytest

import aimon_otel
from aimon_otel.middleware import BudgetExceededASGIMiddleware, BudgetExceededWSGIMiddleware
from aimon_otel.testing import FakeProvider
from tests.conftest import API_KEY, MESSAGES, Telemetry, make_telemetry


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Telemetry]:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "timezone: Europe/Berlin\n"
        "budgets: [{name: acme-cut, match: {tenant_id: acme}, limit_usd: 0, period: month, action: block}]\n"
    )
    telemetry = make_telemetry(budgets=str(budgets))
    yield telemetry
    telemetry.instrumentor.uninstrument()


class Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_wsgi_answers_429_with_retry_after(guarded: Telemetry, fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with aimon_otel.attributes(tenant_id=environ.get("HTTP_X_TENANT", "")):
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        start_response("200 OK", [("content-type", "text/plain")])
        return [reply.choices[0].message.content.encode()]

    server = make_server("127.0.0.1", 0, BudgetExceededWSGIMiddleware(app), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/chat"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"x-tenant": "globex"}), timeout=10) as ok:
            assert ok.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(url, headers={"x-tenant": "acme"}), timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    answer = refused.value
    assert answer.code == 429 and answer.headers["content-type"] == "application/json"
    assert 0 < int(answer.headers["retry-after"]) <= 31 * 86400
    body = json.loads(answer.read())
    assert body["error"] == "budget_exceeded" and body["budget"] == "acme-cut" and body["spent"] == 0
    assert body["resets_at"].endswith(("+01:00", "+02:00"))  # Berlin
    assert "acme-cut" in body["message"]


def test_asgi_answers_429_and_leaves_other_errors_and_started_responses_alone(
    guarded: Telemetry, fake: FakeProvider
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        client = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)
        if scope["path"] == "/boom":
            raise RuntimeError("not ours")
        streaming = scope["path"].startswith("/streaming/")
        if streaming:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        with aimon_otel.attributes(tenant_id=scope["path"].strip("/").split("/")[-1]):
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        if not streaming:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = BudgetExceededASGIMiddleware(app)

    def call(path: str) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        asyncio.run(middleware({"type": "http", "path": path, "method": "POST", "headers": []}, receive, send))
        return sent

    assert call("/globex")[0]["status"] == 200
    start, body = call("/acme")
    assert start["status"] == 429 and (b"retry-after", start["headers"][1][1]) in start["headers"]
    assert json.loads(body["body"])["budget"] == "acme-cut"
    with pytest.raises(RuntimeError, match="not ours"):
        call("/boom")
    with pytest.raises(aimon_otel.BudgetExceeded):  # the 200 already went out: the error goes on
        call("/streaming/acme")
