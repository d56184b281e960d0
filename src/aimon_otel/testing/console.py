"""Read the spans that OpenTelemetry's ``ConsoleSpanExporter`` printed among other output."""

from __future__ import annotations

import json
from typing import Any


def read_console_spans(text: str) -> list[dict[str, Any]]:
    """Every span JSON object in ``text``, in order; other lines are skipped."""
    decoder = json.JSONDecoder()
    spans: list[dict[str, Any]] = []
    position = 0
    while True:
        start = text.find("{\n", position)
        if start < 0:
            return spans
        try:
            found, end = decoder.raw_decode(text, start)
        except ValueError:
            position = start + 1
            continue
        if isinstance(found, dict) and "context" in found and "attributes" in found:
            spans.append(found)
        position = end
