"""What a billing system answered to one batch, and the one HTTP POST the JSON destinations share."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
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


def post_json(
    url: str, payload: Any, headers: Mapping[str, str], timeout: float, content_type: str = "application/json"
) -> HttpAnswer:
    """POST ``payload`` as JSON; any HTTP status is an answer (network failures raise ``OSError``)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, separators=(",", ":")).encode(),
        headers={"Content-Type": content_type, "Accept": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpAnswer(response.status, _json(response.read()), _retry_after(response.headers))
    except urllib.error.HTTPError as error:
        with error:
            return HttpAnswer(error.code, _json(error.read()), _retry_after(error.headers))


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
