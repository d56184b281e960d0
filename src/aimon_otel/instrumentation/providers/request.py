"""Reading the request options every chat-like API shares (temperature, max tokens, stop...)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.util.types import AttributeValue


def request_numbers(kwargs: Mapping[str, Any], names: Sequence[tuple[str, str]]) -> dict[str, AttributeValue]:
    """``gen_ai.request.*`` numbers from the call's keyword arguments, or from ``extra_body`` when an SDK
    no longer takes the option as an argument (anthropic 2.x dropped ``temperature``). Where two arguments
    name one attribute (``max_tokens``, ``max_completion_tokens``), the first in ``names`` wins."""
    extra = kwargs.get("extra_body")
    extra = extra if isinstance(extra, Mapping) else {}
    if extra:
        positions: Iterable[int] = range(len(names))
    else:  # the few arguments given, looked up (not every option asked for): this runs on every call
        index = _positions(names)
        positions = sorted([index[key] for key in kwargs if key in index])
    found: dict[str, AttributeValue] = {}
    for position in positions:
        key, name = names[position]
        value = kwargs.get(key)
        if value is None:
            value = extra.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and name not in found:
            found[name] = value
    return found


_POSITIONS: dict[int, tuple[Sequence[tuple[str, str]], dict[str, int]]] = {}


def _positions(names: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Each argument's place in ``names`` (a provider's constant), made once per ``names``."""
    known = _POSITIONS.get(id(names))
    if known is None or known[0] is not names:
        known = (names, {key: position for position, (key, _) in enumerate(names)})
        if len(_POSITIONS) < 64:
            _POSITIONS[id(names)] = known  # kept with ``names``, so its id is not reused
    return known[1]


def stop_sequences(value: Any) -> list[str] | None:
    """Stop sequences as the SDKs take them: a string or a list of strings."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return None
