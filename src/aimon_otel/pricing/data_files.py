"""genai-prices data as files: the JSON its updater fetches (a provider array), read and written.

``bundled`` names the data shipped in the installed genai-prices package. ``raw_providers`` turns the
package's objects back into that JSON (checked by a round trip in the tests), so the bundled data can be
compared with, or served as, a fetched file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from aimon_otel.errors import AimonConfigError

BUNDLED = "bundled"


def bundled_providers() -> list[Any]:
    from genai_prices.data import providers

    return list(providers)


def parse_providers(raw: Any, source: str) -> list[Any]:
    """The providers of a fetched or saved data file; a clear error if it is not genai-prices data."""
    from genai_prices.types import _providers_from_raw

    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{source}: not genai-prices data (expected a non-empty array of providers)")
    try:
        return list(_providers_from_raw(raw))
    except Exception as error:  # pydantic's ValidationError, and anything a changed format raises
        raise ValueError(f"{source}: not genai-prices data ({str(error).splitlines()[0]})") from None


def load_providers(name: str) -> list[Any]:
    """``bundled``, or a JSON data file."""
    if name == BUNDLED:
        return bundled_providers()
    try:
        raw = json.loads(Path(name).read_text())
    except OSError as error:
        raise AimonConfigError(f"{name}: cannot be read ({error.strerror})") from None
    except ValueError as error:
        raise AimonConfigError(f"{name}: not JSON ({error})") from None
    try:
        return parse_providers(raw, name)
    except ValueError as error:
        raise AimonConfigError(str(error)) from None


def raw_providers(providers: list[Any]) -> list[Any]:
    """The JSON form of genai-prices' provider objects (what its updater fetches)."""
    value = _raw(providers)
    assert isinstance(value, list)
    return value


def _raw(value: Any) -> Any:
    from genai_prices.types import ModelPrice

    if isinstance(value, ModelPrice):
        return {key: _raw(item) for key, item in value.__dict__.items() if item is not None}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        found: dict[str, Any] = {}
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            if item is not None and not field.name.startswith("_"):
                found[field.name.rstrip("_")] = _raw(item)  # ``and_`` is ``and`` in the JSON
        return found
    if isinstance(value, (list, tuple)):
        return [_raw(item) for item in value]
    if isinstance(value, dict):
        return {key: _raw(item) for key, item in value.items()}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, re.Pattern):
        return value.pattern
    return value
