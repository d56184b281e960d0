"""What changed between two sets of prices: per model, each price (USD per million tokens) old -> new.

A model's prices are compared as they apply at one moment (its dated prices resolved), unit by unit:
input, output, cache read and write, audio, requests, and tiered prices by their base and tiers. A
model only in the new data is ``added``, only in the old one ``removed``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class PriceChange:
    provider: str
    """genai-prices' provider id (``openai``, ``anthropic``, ``aws``...)."""
    model: str
    kind: str
    """``changed``, ``added`` or ``removed``."""
    prices: tuple[tuple[str, str | None, str | None], ...]
    """(price, old, new) for each price that differs: ``input_mtok``, ``output_mtok``..., as decimal text."""
    effective: datetime
    """The moment the prices were compared at (when the new ones apply from)."""

    def describe(self) -> str:
        where = f"{self.provider}/{self.model}"
        if self.kind != "changed":
            listed = ", ".join(f"{name} {new if self.kind == 'added' else old}" for name, old, new in self.prices)
            return f"{where} {self.kind}" + (f" ({listed})" if listed else "")
        moves = ", ".join(f"{name} {old or 'none'} -> {new or 'none'}" for name, old, new in self.prices)
        return f"{where}: {moves} (USD per million tokens, from {self.effective:%Y-%m-%d %H:%M} UTC)"


def model_prices(info: Any, at: datetime) -> dict[str, str]:
    """A model's prices at ``at``, by genai-prices' price names, as decimal text (tiers spelled out)."""
    try:
        prices = info.get_prices(at)
    except Exception:  # a model whose prices cannot be resolved at that moment: compared as having none
        return {}
    found: dict[str, str] = {}
    for name, value in vars(prices).items():
        if value is None:
            continue
        if hasattr(value, "base") and hasattr(value, "tiers"):
            tiers = "; ".join(f"over {t.start:,}: {t.price}" for t in value.tiers)
            found[name] = f"{value.base} ({tiers})"
        else:
            found[name] = str(value)
    return found


def _models(providers: Iterable[Any]) -> dict[tuple[str, str], Any]:
    return {(provider.id, model.id): model for provider in providers for model in provider.models}


def diff(old: Iterable[Any], new: Iterable[Any], at: datetime) -> list[PriceChange]:
    """Every model whose prices at ``at`` differ between ``old`` and ``new``, sorted by provider and model."""
    before, after = _models(old), _models(new)
    changes: list[PriceChange] = []
    for key in sorted(before.keys() | after.keys()):
        provider, model = key
        if key not in before:
            prices = model_prices(after[key], at)
            changes.append(PriceChange(provider, model, "added", _listed(prices, new=True), at))
        elif key not in after:
            prices = model_prices(before[key], at)
            changes.append(PriceChange(provider, model, "removed", _listed(prices, new=False), at))
        else:
            was, now = model_prices(before[key], at), model_prices(after[key], at)
            if was != now:
                moved = tuple(
                    (name, was.get(name), now.get(name))
                    for name in sorted(was.keys() | now.keys())
                    if was.get(name) != now.get(name)
                )
                changes.append(PriceChange(provider, model, "changed", moved, at))
    return changes


def _listed(prices: dict[str, str], new: bool) -> tuple[tuple[str, str | None, str | None], ...]:
    return tuple((name, None, value) if new else (name, value, None) for name, value in sorted(prices.items()))
