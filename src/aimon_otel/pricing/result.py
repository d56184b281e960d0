"""What pricing one call gives: a total and its parts, or why there is none."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any


class PricingStatus(StrEnum):
    PRICED = "priced"
    UNKNOWN_MODEL = "unknown_model"
    NO_USAGE = "no_usage"
    INVALID_USAGE = "invalid_usage"
    """Usage that cannot be priced consistently, e.g. more cached tokens than input tokens."""


@dataclass(slots=True)
class CostResult:
    """The cost of one call in USD. ``total`` is None unless ``status`` is ``priced``."""

    status: PricingStatus
    total: Decimal | None = None
    input: Decimal = Decimal(0)
    """Uncached input (text, audio, image...)."""
    output: Decimal = Decimal(0)
    """Output, reasoning included."""
    cache_read: Decimal = Decimal(0)
    cache_write: Decimal = Decimal(0)
    source: str = "pricing"
    """``pricing`` (our price table) or ``provider`` (a cost the provider reported)."""
    model: str | None = None
    """The price entry that matched, e.g. ``gpt-4o-mini``."""
    provider: str | None = None
    """The price table's provider id, e.g. ``openai``."""
    cache_savings: Decimal = Decimal(0)
    """What cache-read tokens would have cost as plain input, less what they cost."""
    requests: Decimal = Decimal(0)
    """Per-request fees: a flat fee per call, server-side tool use such as web search."""
    detail: str | None = None
    """Why the usage could not be priced (``invalid_usage``), naming the counts at fault."""

    @property
    def priced(self) -> bool:
        return self.status is PricingStatus.PRICED

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (Decimal amounts as strings, so no digit is lost)."""
        return {
            "status": self.status.value,
            "total_usd": None if self.total is None else usd(self.total),
            "input_usd": usd(self.input),
            "output_usd": usd(self.output),
            "cache_read_usd": usd(self.cache_read),
            "cache_write_usd": usd(self.cache_write),
            "requests_usd": usd(self.requests),
            "cache_savings_usd": usd(self.cache_savings),
            "source": self.source,
            "model": self.model,
            "provider": self.provider,
            **({"detail": self.detail} if self.detail else {}),
        }


def usd(amount: Decimal) -> str:
    """A plain decimal string, no exponent and no trailing zeros: ``0.000033``."""
    text = format(amount.normalize(), "f")
    return text if text != "-0" else "0"
