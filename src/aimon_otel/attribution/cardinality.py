"""A cap on distinct values per metric attribute, so a runaway model name or id cannot explode series.

The OpenTelemetry SDK already caps each metric at 2,000 attribute sets per reader (set with
``cardinality_limits=`` on the reader); past that it folds *every new* set into one point
marked ``otel.metric.overflow=true``, whatever its provider, model or tenant. That protects
memory but loses the whole breakdown at once. This guard acts earlier and narrower: once one
attribute (say ``gen_ai.request.model``) has seen ``limit`` distinct values, further new values of
that attribute alone are recorded as ``_other`` on metrics; known values, the other attributes,
and spans (which keep the true value) are untouched. Hitting the cap is logged once per attribute.
"""

from __future__ import annotations

import logging
import threading

OTHER = "_other"

logger = logging.getLogger(__name__)


class ValueLimiter:
    """Admits at most ``limit`` distinct values per attribute key; the rest become ``_other``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def admit(self, key: str, value: str) -> str:
        seen = self._seen.get(key)
        if seen is not None and value in seen:  # the hot path: a value seen before, no lock
            return value
        with self._lock:
            seen = self._seen.setdefault(key, set())
            if value in seen:
                return value
            if len(seen) < self.limit:
                seen.add(value)
                return value
            if OTHER not in seen:
                seen.add(OTHER)
                logger.warning(
                    "aimon-otel: metric attribute %s reached %d distinct values; new values are recorded as %r "
                    "on metrics from now on (spans keep them). Raise AIMON_METRICS_MAX_VALUES if this is expected.",
                    key,
                    self.limit,
                    OTHER,
                )
            return OTHER
