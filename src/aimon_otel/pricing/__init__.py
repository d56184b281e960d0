"""Prices: genai-prices' data compiled to plain arithmetic, with the user's overrides on top."""

from aimon_otel.pricing.engine import PricingEngine
from aimon_otel.pricing.overrides import Overrides, load_overrides
from aimon_otel.pricing.result import CostResult, PricingStatus

__all__ = ["CostResult", "Overrides", "PricingEngine", "PricingStatus", "load_overrides"]
