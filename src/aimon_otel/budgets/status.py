"""The public face of budgets in the app: ``budget_status(...)`` and ``on_budget_event(...)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aimon_otel.budgets.guard import BudgetEvent, BudgetStatus


def budget_status(
    *,
    tenant_id: str | None = None,
    user_id: str | None = None,
    feature: str | None = None,
    agent: str | None = None,
    provider: str | None = None,
    model: str | None = None,
) -> list[BudgetStatus]:
    """Where each budget that applies stands in its current period, read from the ledger the guard uses.

    Fields left out match any budget; a ``for_each`` budget is listed for the value given for its
    field. ``user_id`` is the raw id (hashed here when ``AIMON_USER_ID_HASH`` is set). Empty when
    ``instrument()`` was given no budgets file.
    """
    from aimon_otel.instrumentor import AimonInstrumentor

    pipeline = AimonInstrumentor().pipeline
    guard = pipeline.guard if pipeline is not None else None
    if guard is None or pipeline is None:
        return []
    if user_id is not None and pipeline.hash_user is not None:  # the raw id, as the app knows it
        user_id = pipeline.hash_user(user_id)
        if user_id is None:
            return []
    return guard.status(
        tenant_id=tenant_id, user_id=user_id, feature=feature, agent=agent, provider=provider, model=model
    )


def on_budget_event(listener: Callable[[BudgetEvent], Any]) -> Callable[[], None]:
    """Call ``listener(event)`` on each ``warning``, ``reached`` and ``blocked`` event; returns what unsubscribes.

    Listeners run on the thread that made the call, after it ended (``blocked``: before raising);
    keep them quick. One that raises is logged once and never breaks the call.
    """
    from aimon_otel.instrumentor import AimonInstrumentor

    return AimonInstrumentor().budget_events.subscribe(listener)
