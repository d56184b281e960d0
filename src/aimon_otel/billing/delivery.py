"""What a billing system answered to one batch, and the one HTTP POST the JSON destinations share."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aimon_otel.billing.events import UsageEvent


@dataclass
class Delivery:
    """The fate of each event of a batch. Every event is in exactly one list."""

    sent: list[str] = field(default_factory=list)
    """Received now."""
    duplicates: list[str] = field(default_factory=list)
    """Answered as already received: billed before (a batch resent after a lost answer)."""
    rejected: dict[str, str] = field(default_factory=dict)
    """Refused for good (an unknown subscription...): id -> the billing system's reason. Dropped, logged."""
    retry: list[str] = field(default_factory=list)
    """Not received (the system is down, busy, or refused the batch for another event): sent again later."""
    retry_after: float | None = None
    """Seconds the billing system asked us to wait (``Retry-After``)."""
    problem: str | None = None
    """Why events are to be retried, for the log."""

    def done(self) -> list[str]:
        """The events to forget: the billing system has them, or never will."""
        return [*self.sent, *self.duplicates, *self.rejected]


class Destination(Protocol):
    """A billing system: sends one batch (at most ``max_batch`` events) and says what became of each."""

    name: str
    max_batch: int

    def send(self, events: Sequence[UsageEvent]) -> Delivery: ...


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: Any
    """The answer's JSON (None if it was not JSON)."""
    retry_after: float | None


class JsonPoster:
    """POSTs JSON to one API over a kept-alive connection (one sender thread uses it): a new TCP (and TLS)
    connection per batch would cost more than the batch. A dropped connection is opened again once."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=self.timeout)

    def post(self, payload: Any, headers: Mapping[str, str], content_type: str = "application/json") -> HttpAnswer:
        """Any HTTP status is an answer; network failures raise ``OSError``."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        sent = {"Content-Type": content_type, "Accept": "application/json", **headers}
        for attempt in (1, 2):
            connection = self._connection or self._connect()
            self._connection = connection
            try:
                connection.request("POST", self.path, body=body, headers=sent)
                response = connection.getresponse()
                data = response.read()
            except (http.client.HTTPException, OSError):
                connection.close()
                self._connection = None
                if attempt == 2:
                    raise
                continue  # a kept-alive connection the server had closed: once more on a new one
            if response.will_close:
                connection.close()
                self._connection = None
            parsed = _json(data) if response.status >= 300 else None  # a success's body is not read
            return HttpAnswer(response.status, parsed, _retry_after(response.headers))
        raise AssertionError("unreachable")


def _json(data: bytes) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def retry_all(events: Sequence[UsageEvent], problem: str, retry_after: float | None = None) -> Delivery:
    return Delivery(retry=[event.id for event in events], problem=problem, retry_after=retry_after)


def is_retryable(status: int) -> bool:
    """Worth sending again: the system is busy or failing (408, 409, 425, 429, 5xx), not a refusal."""
    return status in (408, 409, 425, 429) or status >= 500
