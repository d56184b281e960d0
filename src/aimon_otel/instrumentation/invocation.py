"""The plain record of one LLM API call: what was asked, what was answered, how long, which error.

Provider adapters fill it in (reading the SDK's request, response and stream events); the
pipeline turns it into telemetry when the call ends. It holds no span and does no I/O, so an
adapter can be read, and tested, as a description of its SDK.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.util.types import AttributeValue

from aimon_otel.instrumentation.redaction import redact
from aimon_otel.instrumentation.usage import Usage

if TYPE_CHECKING:
    from aimon_otel.budgets.ledger import Release


@dataclass(slots=True)
class Invocation:
    """One API call. Request fields are set before sending; response fields as the answer is read."""

    operation: str
    provider: str
    request_model: str | None
    server_address: str | None = None
    server_port: int | None = None
    stream: bool = False
    request_attributes: dict[str, AttributeValue] = field(default_factory=dict)
    """``gen_ai.request.*`` options and, when captured, the input messages."""
    billable: bool = True
    """False for calls that cost nothing (token counting): no cost, not counted as unpriced."""
    sdk_traces_itself: bool = False
    """The SDK starts its own span for this call (anthropic 2.x): ours is not started."""
    secrets: tuple[str, ...] = ()
    """The client's keys, scrubbed from any error text we record."""
    joins_enclosing_span: bool = False
    """Another instrumentation of this SDK may have started a span around this very call: join it."""
    error_type_of: Callable[[BaseException], str] | None = None
    """How the SDK's exceptions become ``error.type`` when their class name says too little (google-genai)."""

    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: Sequence[str] | None = None
    usage: Usage | None = None
    service_tier: str | None = None
    response_attributes: dict[str, AttributeValue] = field(default_factory=dict)
    """Provider-specific answers (system fingerprint, embedding size) and, when captured, the output."""

    started: float = field(default_factory=time.perf_counter)
    started_wall: float = field(default_factory=time.time)
    first_chunk_at: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    stream_outcome: str | None = None
    call_id: str | None = None
    """Set by the budget check, else when the call ends, for the sinks: the one id the budget ledger counts it
    under (once) and the billing system deduplicates it on."""
    held: Release | None = None
    """What the budget check held in the ledger for this call, given back when the call is settled."""
    budget_plan: tuple[dict[str, str], Any] | None = None
    """The attribution the budget check read and the budgets it found for it, reused when the call is settled."""

    @property
    def model(self) -> str | None:
        """The model that answered, else the one asked for: what the call is priced as."""
        return self.response_model or self.request_model

    def answered(
        self,
        *,
        model: str | None = None,
        response_id: str | None = None,
        finish_reasons: Sequence[str] | None = None,
        usage: Usage | None = None,
        service_tier: str | None = None,
        attributes: dict[str, AttributeValue] | None = None,
    ) -> None:
        """Record what the response said (only what it said: absent values keep what is known)."""
        if model:
            self.response_model = model
        if response_id:
            self.response_id = response_id
        if finish_reasons:
            self.finish_reasons = finish_reasons
        if usage is not None:
            self.usage = usage
        if service_tier:
            self.service_tier = service_tier
        if attributes:
            self.response_attributes.update(attributes)

    def first_chunk(self) -> None:
        if self.first_chunk_at is None:
            self.first_chunk_at = time.perf_counter()

    def failed(self, error_type: str, message: str) -> None:
        """The call failed: ``error_type`` as the conventions want it (the SDK exception's class name)."""
        self.error_type = error_type
        self.error_message = redact(message, self.secrets)

    def raised(self, exc: BaseException) -> None:
        name = type(exc).__qualname__
        kind = self.error_type_of(exc) if self.error_type_of is not None else name
        self.failed(kind, f"{name}: {exc}")
