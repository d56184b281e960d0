"""HTTP 429 for a refused call: ``BudgetExceeded`` raised in a request handler becomes a JSON answer
with ``Retry-After`` until the budget resets, instead of a 500; ``CreditsExhausted`` (a prepaid
balance used up) becomes 402 Payment Required with the balance.

    app = BudgetExceededASGIMiddleware(app)     # Starlette, FastAPI, any ASGI app
    app.wsgi_app = BudgetExceededWSGIMiddleware(app.wsgi_app)   # any WSGI app

Frameworks that turn exceptions into 500 pages themselves (Flask, Django) need their own hook;
:func:`too_many_requests` gives the status, headers and body to answer with (see the README).
A response that has already started is left alone: the exception goes on.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from aimon_otel.budgets.guard import BudgetExceeded, CreditsExhausted

STATUS = 429
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


PAYMENT_REQUIRED = 402
_REASONS = {STATUS: "Too Many Requests", PAYMENT_REQUIRED: "Payment Required"}


def too_many_requests(refused: BudgetExceeded) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and JSON body for a refused call; the body says which budget and when it resets
    (429), or, for used-up credits, the balance (402: no time helps, a payment does)."""
    if isinstance(refused, CreditsExhausted):
        credits = json.dumps(
            {
                "error": "credits_exhausted",
                "message": str(refused),
                "budget": refused.budget,
                "key": refused.key,
                "balance_usd": refused.balance_usd,
                "overdraft_usd": refused.overdraft_usd,
            }
        ).encode()
        return PAYMENT_REQUIRED, [("content-type", "application/json"), ("content-length", str(len(credits)))], credits
    body = {
        "error": "budget_exceeded",
        "message": str(refused),
        "budget": refused.budget,
        "key": refused.key,
        "unit": refused.unit,
        "spent": refused.spent_usd if refused.unit == "USD" else refused.spent_tokens,
        "limit": refused.limit,
        "period": refused.period,
        "period_start": refused.period_start.isoformat(),
        "resets_at": refused.resets_at.isoformat(),
    }
    payload = json.dumps(body).encode()
    headers = [
        ("content-type", "application/json"),
        ("retry-after", str(refused.retry_after)),
        ("content-length", str(len(payload))),
    ]
    return STATUS, headers, payload


class BudgetExceededASGIMiddleware:
    """ASGI: a ``BudgetExceeded`` that escapes the app before it started its response becomes a 429."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message.get("type") == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except BudgetExceeded as refused:
            if started:
                raise
            status, headers, payload = too_many_requests(refused)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(name.encode(), value.encode()) for name, value in headers],
                }
            )
            await send({"type": "http.response.body", "body": payload})


class BudgetExceededWSGIMiddleware:
    """WSGI: a ``BudgetExceeded`` raised while the app builds its response becomes a 429."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            return self.app(environ, start_response)
        except BudgetExceeded as refused:
            status, headers, payload = too_many_requests(refused)
            start_response(f"{status} {_REASONS[status]}", headers, sys.exc_info())
            return [payload]
