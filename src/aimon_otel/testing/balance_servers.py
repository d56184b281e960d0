"""Loopback OpenRouter and DeepSeek balance endpoints, in their documented response shapes.

``state`` is what they answer: the amounts, and ``mode`` ``up``, ``unauthorized`` (401), ``failing``
(500) or ``slow`` (answers after ``delay`` seconds, for timeouts). Each request is counted per path.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any

from aimon_otel.testing.fake_provider import _QuietServer

KEY = "sk-or-balance-test"


@dataclass
class BalanceState:
    openrouter_total_credits: float = 100.5
    openrouter_total_usage: float = 93.25
    openrouter_key_limit_remaining: float | None = 12.5
    deepseek_balances: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"currency": "CNY", "total_balance": "110.00", "granted_balance": "10.00", "topped_up_balance": "100.00"},
            {"currency": "USD", "total_balance": "4.20", "granted_balance": "0.00", "topped_up_balance": "4.20"},
        ]
    )
    mode: str = "up"
    delay: float = 0.0
    hits: dict[str, int] = field(default_factory=dict)


class BalanceServer:
    def __init__(self) -> None:
        self.state = BalanceState()
        self._server = _QuietServer(("127.0.0.1", 0), _handler(self.state))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> BalanceServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()


def _answer(state: BalanceState, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    state.hits[path] = state.hits.get(path, 0) + 1
    if state.mode == "slow":
        time.sleep(state.delay)
    if state.mode == "unauthorized" or headers.get("authorization") != f"Bearer {KEY}":
        return 401, {"error": {"message": "No auth credentials found", "code": 401}}
    if state.mode == "failing":
        return 500, {"error": {"message": "Internal Server Error", "code": 500}}
    if path == "/api/v1/credits":
        return 200, {
            "data": {"total_credits": state.openrouter_total_credits, "total_usage": state.openrouter_total_usage}
        }
    if path == "/api/v1/key":
        limit = state.openrouter_key_limit_remaining
        return 200, {
            "data": {
                "label": "sk-or-v1-abc...xyz",
                "limit": None if limit is None else 50,
                "limit_remaining": limit,
                "usage": 37.5,
                "is_free_tier": False,
            }
        }
    if path == "/user/balance":
        return 200, {"is_available": True, "balance_infos": state.deepseek_balances}
    return 404, {"error": {"message": "Not Found"}}


def _handler(state: BalanceState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, body = _answer(state, self.path, {k.lower(): v for k, v in self.headers.items()})
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
