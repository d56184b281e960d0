"""The one place instrumentation faults and bad input go: logged once per kind, never raised into the app."""

from __future__ import annotations

import logging

logger = logging.getLogger("aimon_otel")
_reported: set[tuple[str, str]] = set()
_warned: set[tuple[str, ...]] = set()
MAX_WARNED = 1000
"""Distinct warnings remembered: a flood of distinct bad values must not grow memory (nor the log)."""


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


def warn_once(key: tuple[str, ...], message: str) -> None:
    """Log a warning about bad input (a setting, a resolver's answer, a value) the first time ``key`` is seen."""
    if key in _warned or len(_warned) >= MAX_WARNED:
        return
    _warned.add(key)
    logger.warning("%s", message)
