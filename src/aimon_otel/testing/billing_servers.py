"""Loopback billing systems for tests: Lago's events API, Stripe's meter events, a CloudEvents intake.

No Lago or Stripe server can run here; these speak their documented HTTP: paths, auth headers, request
bodies (Lago JSON, Stripe form-encoded, CloudEvents batch JSON), deduplication by id (Lago 422
``value_already_exist`` for the whole batch, Stripe 400 naming ``identifier``, CloudEvents silently),
and error answers on demand (``down``: 503; ``throttled``: 429 with ``Retry-After``). Each keeps what it
stored, once per id, for the tests to count.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any

from aimon_otel.testing.fake_provider import _QuietServer

LAGO_KEY = "lago-test-key"
STRIPE_KEY = "sk_test_billing"


class BillingServer:
    """One of ``lago``, ``stripe``, ``cloudevents`` on a free loopback port."""

    def __init__(self, kind: str, known_customers: set[str] | None = None) -> None:
        if kind not in ("lago", "stripe", "cloudevents"):
            raise ValueError(kind)
        self.kind = kind
        self.known_customers = known_customers
        """Subscriptions/customers that exist (None: any)."""
        self.stored: dict[str, dict[str, Any]] = {}
        """Every event stored, by its id, once."""
        self.requests = 0
        self.duplicates_answered = 0
        self.mode = "up"
        """``up``, ``down`` (503) or ``throttled`` (429, Retry-After)."""
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def events_url(self) -> str:
        """What ``AIMON_BILLING_URL`` is set to: the API base, or for CloudEvents the intake itself."""
        return f"{self.url}/api/v1/events" if self.kind == "cloudevents" else self.url

    def start(self) -> BillingServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> BillingServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- the APIs ---------------------------------------------------------------------------------

    def answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            self.requests += 1
            if self.mode == "down":
                return 503, {}, self._error_body("Service Unavailable")
            if self.mode == "throttled":
                return 429, {"Retry-After": "0.2"}, self._error_body("Too Many Requests")
            if self.kind == "lago":
                return self._lago(path, headers, raw)
            if self.kind == "stripe":
                return self._stripe(path, headers, raw)
            return self._cloudevents(path, headers, raw)

    def _error_body(self, message: str) -> Any:
        if self.kind == "stripe":
            return _stripe_error("api_error", message)
        return {"error": message}

    def _lago(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], Any]:
        if path != "/api/v1/events/batch":
            return 404, {}, {"status": 404, "error": "Not Found", "code": "not_found"}
        if headers.get("authorization") != f"Bearer {LAGO_KEY}":
            return 401, {}, {"status": 401, "error": "Unauthorized"}
        events = json.loads(raw)["events"]
        if not events or len(events) > 100:
            code = "no_events" if not events else "too_many_events"
            return 422, {}, _lago_invalid({"events": [code]})
        errors: dict[str, Any] = {}
        for index, event in enumerate(events):
            problems: dict[str, list[str]] = {}
            if event.get("transaction_id") in self.stored:
                problems["transaction_id"] = ["value_already_exist"]
            customer = event.get("external_subscription_id")
            if self.known_customers is not None and customer not in self.known_customers:
                problems["external_subscription_id"] = ["subscription_not_found"]
            if problems:
                errors[str(index)] = problems
        if errors:  # Lago validates the whole batch before storing any of it
            self.duplicates_answered += sum(1 for e in errors.values() if "transaction_id" in e)
            return 422, {}, _lago_invalid(errors)
        for event in events:
            self.stored[event["transaction_id"]] = event
        return 200, {}, {"events": events}

    def _stripe(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], Any]:
        if path != "/v1/billing/meter_events":
            return 404, {}, _stripe_error("invalid_request_error", f"Unrecognized request URL (POST: {path})")
        if headers.get("authorization") != f"Bearer {STRIPE_KEY}":
            return 401, {}, _stripe_error("invalid_request_error", "Invalid API Key provided")
        form = dict(urllib.parse.parse_qsl(raw.decode()))
        identifier = form.get("identifier", "")
        customer = form.get("payload[stripe_customer_id]")
        event: dict[str, Any] = {
            "event_name": form.get("event_name"),
            "identifier": identifier,
            "timestamp": int(form.get("timestamp", "0")),
            "payload": {"stripe_customer_id": customer, "value": form.get("payload[value]")},
        }
        if identifier in self.stored:
            self.duplicates_answered += 1
            message = f"An event already exists with identifier {identifier}."
            return 400, {}, _stripe_error("invalid_request_error", message, param="identifier")
        if self.known_customers is not None and customer not in self.known_customers:
            return 400, {}, _stripe_error("invalid_request_error", f"No such customer: '{customer}'", param="payload")
        self.stored[identifier] = event
        return 200, {}, {"object": "billing.meter_event", **event, "livemode": False}

    def _cloudevents(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], Any]:
        if path != "/api/v1/events":
            return 404, {}, {"title": "Not Found"}
        if not headers.get("content-type", "").startswith("application/cloudevents-batch+json"):
            return 415, {}, {"title": "Unsupported Media Type"}
        for event in json.loads(raw):
            if event.get("specversion") != "1.0" or not event.get("id") or not event.get("source"):
                return 400, {}, {"title": "Bad Request", "detail": "not a CloudEvent"}
            self.stored.setdefault(event["id"], event)  # deduplicated by id (and source), silently
        return 204, {}, None


def _lago_invalid(details: dict[str, Any]) -> dict[str, Any]:
    return {"status": 422, "error": "Unprocessable Entity", "code": "validation_errors", "error_details": details}


def _stripe_error(kind: str, message: str, param: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if param is not None:
        error["param"] = param
    return {"error": error}


def _handler(server: BillingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes: without this, Nagle holds the body back until the
            # client's delayed ACK of the headers (40 ms a request on loopback, which no real API adds).
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, body = server.answer(self.path, headers, raw)
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("request-id", "req_billing_test")
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            """``/_stored``: how many events are stored (for a bench running the server in another process)."""
            data = json.dumps({"stored": len(server.stored)}).encode()
            self.send_response(200 if self.path == "/_stored" else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
