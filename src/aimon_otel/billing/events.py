"""One usage event per billed call: who is billed, for what, how much; serialised for the spool.

The amount is exact: USD as a decimal string (the call's cost times the margin, never a float), or
tokens (input + output, no margin). A call is not billed when it has no usage, when it is unpriced and
billed in USD (an unknown model is never $0), or when its tenant maps to no customer: each such call
is counted under its reason instead, so a misconfiguration shows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Literal

from aimon_otel import semconv
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.pricing import CostResult

Unit = Literal["usd", "tokens"]
CustomerOf = Callable[[str | None], str | None]
"""Tenant (None: the call had none) to the billing system's customer or subscription id, None: not billed."""

NO_USAGE = "no_usage"
UNPRICED = "unpriced"
UNMAPPED = "unmapped"


@dataclass(frozen=True)
class UsageEvent:
    """What the billing system is told of one call."""

    id: str
    """The call's id: the billing system deduplicates on it, so a batch sent twice bills once."""
    timestamp: float
    """When the call ended, Unix seconds."""
    customer: str
    tenant: str | None
    provider: str
    model: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: str | None
    """The call's cost, a decimal string (None: unpriced, billed by its tokens)."""
    unit: Unit
    billed: str
    """What is billed: USD as a decimal string (cost x margin), or a whole number of tokens."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> UsageEvent:
        return cls(**json.loads(text))

    @property
    def billed_micro_usd(self) -> int:
        """The billed amount in whole micro-dollars (Stripe meters take integers), rounded half up."""
        return int((Decimal(self.billed) * 1_000_000).to_integral_value(rounding="ROUND_HALF_UP"))


def usage_event(
    call_id: str,
    ended_at: float,
    invocation: Invocation,
    cost: CostResult,
    attribution: Mapping[str, str],
    customer_of: CustomerOf,
    unit: Unit,
    margin: Decimal,
) -> UsageEvent | str:
    """The call's event, or the reason it is not billed (``no_usage``, ``unpriced``, ``unmapped``)."""
    usage = invocation.usage
    if usage is None or usage.problems or (usage.input_tokens is None and usage.output_tokens is None):
        return NO_USAGE
    if unit == "usd" and cost.total is None:
        return UNPRICED
    tenant = attribution.get(semconv.TENANT_ID)
    customer = customer_of(tenant)
    if customer is None:
        return UNMAPPED
    input_tokens, output_tokens = usage.input_tokens or 0, usage.output_tokens or 0
    billed = str(cost.total * margin) if unit == "usd" and cost.total is not None else str(input_tokens + output_tokens)
    return UsageEvent(
        id=call_id,
        timestamp=ended_at,
        customer=customer,
        tenant=tenant,
        provider=invocation.provider,
        model=invocation.response_model or invocation.request_model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
        cost_usd=str(cost.total) if cost.total is not None else None,
        unit=unit,
        billed=billed,
    )
