"""aimon-otel: priced, tenant-attributed OpenTelemetry for LLM API calls."""

from aimon_otel.attribution.context import attributes
from aimon_otel.budgets.credits import TopUp
from aimon_otel.budgets.guard import (
    BudgetEvent,
    BudgetExceeded,
    BudgetLedgerUnavailable,
    BudgetStatus,
    CreditsExhausted,
)
from aimon_otel.budgets.limits import LimitSet, PlanSet
from aimon_otel.budgets.status import (
    add_credits,
    budget_history,
    budget_status,
    clear_limit,
    credit_balance,
    limits,
    on_budget_event,
    set_limit,
    set_plan,
)
from aimon_otel.config import Settings
from aimon_otel.errors import AimonConfigError
from aimon_otel.instrumentation.instrumentor import AimonInstrumentor
from aimon_otel.instrumentation.manual import cost, record_usage
from aimon_otel.instrumentation.processor import CostEnrichmentSpanProcessor
from aimon_otel.pricing import CostResult, PricingEngine
from aimon_otel.pricing.changes import PriceChange
from aimon_otel.pricing.updates import on_price_change
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
    "CreditsExhausted",
    "LimitSet",
    "PlanSet",
    "PriceChange",
    "PricingEngine",
    "Settings",
    "TopUp",
    "__version__",
    "add_credits",
    "attributes",
    "budget_history",
    "budget_status",
    "clear_limit",
    "cost",
    "credit_balance",
    "limits",
    "on_budget_event",
    "on_price_change",
    "record_usage",
    "set_limit",
    "set_plan",
]
