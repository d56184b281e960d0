"""Message content in the GenAI conventions' shape, recorded only when the user opts in.

Each text part is cut to ``content_max_chars`` so one huge prompt cannot bloat a span.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from aimon_otel.semconv import OUTPUT_MESSAGES

TRUNCATION_MARK = "…[truncated {} chars]"


def field(obj: Any, name: str) -> Any:
    """``obj[name]`` for a dict, ``obj.name`` for an SDK model; None when absent."""
    if isinstance(obj, dict):  # checked first: an ABC check on every field read is measurable
        return obj.get(name)
    if obj is None:
        return None
    kind = type(obj)
    names = _PYDANTIC_NAMES.get(kind)
    if names is None:
        names = _pydantic_names(kind)
    if names is _NOT_PYDANTIC:
        value = getattr(obj, name, None)
        if value is None and _is_mapping(kind):
            return obj.get(name)
        return value
    if name in names:  # a field or a name on the class: found without pydantic's __getattr__
        return getattr(obj, name, None)
    extra = obj.__pydantic_extra__  # anything else is an extra the provider sent, or absent
    return extra.get(name) if extra else None


def fields(obj: Any, names: tuple[str, ...]) -> list[Any]:
    """``field(obj, name)`` for each of ``names``, the object's kind looked up once (a response's usage is read
    a dozen fields at a time on every call)."""
    if isinstance(obj, dict):
        return [obj.get(name) for name in names]
    if obj is None:
        return [None] * len(names)
    known = _PYDANTIC_NAMES.get(type(obj))
    if known is None:
        known = _pydantic_names(type(obj))
    if known is _NOT_PYDANTIC:
        return [field(obj, name) for name in names]
    extra = obj.__pydantic_extra__ or {}
    return [getattr(obj, name, None) if name in known else extra.get(name) for name in names]


_NOT_PYDANTIC: frozenset[str] = frozenset()
_PYDANTIC_NAMES: dict[type, frozenset[str]] = {}


def _pydantic_names(kind: type) -> frozenset[str]:
    """For a pydantic v2 model class, its fields and every name its classes define; else ``_NOT_PYDANTIC``.

    An absent field read through pydantic's ``__getattr__`` raises and catches an AttributeError: ~4 us, paid on
    every call for the optional fields we look for (``usage.cost``, ``usage.iterations``). Its fields live in
    the instance ``__dict__``, extras in ``__pydantic_extra__``; any other name is on the class or absent."""
    pydantic = any("__pydantic_extra__" in vars(base).get("__slots__", ()) for base in kind.__mro__)
    names = _NOT_PYDANTIC
    if pydantic:
        fields = getattr(kind, "__pydantic_fields__", None) or {}
        names = frozenset[str](fields).union(*(vars(base) for base in kind.__mro__))
    if len(_PYDANTIC_NAMES) < 4096:  # SDK classes are few; a runaway of generated classes is not kept
        _PYDANTIC_NAMES[kind] = names
    return names


_MAPPING_TYPES: dict[type, bool] = {}


def _is_mapping(kind: type) -> bool:
    """``issubclass(kind, Mapping)``, remembered per type: the ABC check costs a microsecond each time."""
    known = _MAPPING_TYPES.get(kind)
    if known is None:
        known = _MAPPING_TYPES[kind] = issubclass(kind, Mapping)
    return known


def cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + TRUNCATION_MARK.format(len(text) - max_chars)


def text_part(text: str, max_chars: int) -> dict[str, Any]:
    return {"type": "text", "content": cut(text, max_chars)}


def assistant_output(text: str | None, max_chars: int) -> dict[str, AttributeValue]:
    """The answer's text as ``gen_ai.output.messages`` (one assistant message), or nothing when there is none."""
    if not text:
        return {}
    return {OUTPUT_MESSAGES: to_json([{"role": "assistant", "parts": [text_part(text, max_chars)]}])}


def to_json(messages: list[dict[str, Any]]) -> str:
    return json.dumps(messages, ensure_ascii=False, default=str)
