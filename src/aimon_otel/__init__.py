"""aimon-otel: priced, tenant-attributed OpenTelemetry for LLM API calls."""

from aimon_otel.config import AimonConfigError, Settings
from aimon_otel.instrumentor import AimonInstrumentor
from aimon_otel.version import __version__

__all__ = ["AimonConfigError", "AimonInstrumentor", "Settings", "__version__"]
