"""The one place instrumentation faults go: logged once per kind, never raised into the app."""

from __future__ import annotations

import logging

logger = logging.getLogger("aimon_otel")
_reported: set[tuple[str, str]] = set()


def report_fault(where: str, exc: BaseException) -> None:
    """Log an internal error the first time this kind of fault happens at this place."""
    key = (where, type(exc).__name__)
    if key in _reported:
        return
    _reported.add(key)
    logger.warning(
        "aimon-otel: internal error in %s; telemetry for this call may be incomplete, "
        "the application's call is unaffected (logged once)",
        where,
        exc_info=exc,
    )
