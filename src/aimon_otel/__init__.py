"""aimon-otel: priced, tenant-attributed OpenTelemetry for LLM API calls."""

from aimon_otel.budgets.guard import BudgetEvent, BudgetExceeded, BudgetLedgerUnavailable, BudgetStatus
from aimon_otel.budgets.status import budget_status, on_budget_event
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
    "BudgetEvent",
    "BudgetExceeded",
    "BudgetLedgerUnavailable",
    "BudgetStatus",
    "CostEnrichmentSpanProcessor",
    "CostResult",
    "PricingEngine",
    "Settings",
    "__version__",
    "attributes",
    "budget_status",
    "cost",
    "on_budget_event",
    "record_usage",
]
