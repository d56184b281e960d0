"""aimon-otel: priced, tenant-attributed OpenTelemetry for LLM API calls."""

from aimon_otel.config import AimonConfigError, Settings
from aimon_otel.context import attributes
from aimon_otel.instrumentor import AimonInstrumentor
from aimon_otel.manual import cost, record_usage
from aimon_otel.pricing import CostResult, PricingEngine
from aimon_otel.processor import CostEnrichmentSpanProcessor
from aimon_otel.version import __version__

__all__ = [
    "AimonConfigError",
    "AimonInstrumentor",
    "CostEnrichmentSpanProcessor",
    "CostResult",
    "PricingEngine",
    "Settings",
    "__version__",
    "attributes",
    "cost",
    "record_usage",
]
