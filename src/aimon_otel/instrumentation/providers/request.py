"""Reading the request options every chat-like API shares (temperature, max tokens, stop...)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue


def request_numbers(kwargs: Mapping[str, Any], names: Iterable[tuple[str, str]]) -> dict[str, AttributeValue]:
    """``gen_ai.request.*`` numbers from the call's keyword arguments, or from ``extra_body`` when an SDK
    no longer takes the option as an argument (anthropic 2.x dropped ``temperature``)."""
    extra = kwargs.get("extra_body")
    extra = extra if isinstance(extra, Mapping) else {}
    found: dict[str, AttributeValue] = {}
    for key, name in names:
        value = kwargs.get(key)
        if value is None:
            value = extra.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and name not in found:
            found[name] = value
    return found


def stop_sequences(value: Any) -> list[str] | None:
    """Stop sequences as the SDKs take them: a string or a list of strings."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return None
