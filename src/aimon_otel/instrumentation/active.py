"""The instrumentation in force, for the parts that serve it without importing it.

A span processor made on its own (``CostEnrichmentSpanProcessor()`` added by hand) prices and attributes
spans with the instrumentor's pricing engine and attribution (user ids hashed alike). The instrumentor
registers itself here when its module loads (the package's ``__init__`` loads it before any of our modules
runs), and the processor reads from here: neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aimon_otel.instrumentation.pipeline import Pipeline

_fallback_pipeline: Callable[[], Pipeline] | None = None


def register(fallback_pipeline: Callable[[], Pipeline]) -> None:
    """``fallback_pipeline``: the instrumented calls' pipeline, else one made from the environment."""
    global _fallback_pipeline
    _fallback_pipeline = fallback_pipeline


def fallback_pipeline() -> Pipeline:
    if _fallback_pipeline is None:
        raise RuntimeError("aimon_otel's instrumentor is not loaded: import aimon_otel first")
    return _fallback_pipeline()
