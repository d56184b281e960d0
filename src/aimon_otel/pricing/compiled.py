"""A model's prices compiled to plain arithmetic, so pricing a call costs a few microseconds.

genai-prices prices usage over a lattice of units (input tokens, their cached part, their
audio part...): each priced unit is charged for its *leaf* count, its own count minus what
more specific priced units already charged. Compiling a ``ModelPrice`` once precomputes
the leaf order, which units to subtract, the tiers, and which missing counts make the usage
ambiguous. ``tests/test_pricing_property.py`` checks this against genai-prices' ``calc_price``
for every model it knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, cached_property
from typing import Any, NamedTuple

from aimon_otel.pricing.result import CostResult, PricingStatus

_ZERO = Decimal(0)


@dataclass(frozen=True)
class PricedUnit:
    usage_key: str
    per: int
    price: Decimal
    tiers: tuple[tuple[int, Decimal], ...]
    """(start, price) by descending start: above ``start`` input tokens, all tokens pay ``price``."""
    part: int
    """Which part of the breakdown it adds to: 1 input, 2 output, 3 cache read, 4 cache write,
    5 requests (per-request and server-tool fees), 0 none."""
    subtract: tuple[int, ...]
    """Indexes of more specific priced units (already computed) whose leaf counts are taken off."""
    ambiguous_if: Ambiguity
    """When this unit's count is missing, which reported usage makes it ambiguous."""
    price_per_unit: Decimal | None
    """``price / per`` when that division is exact (``per`` a power of ten), to save a division per call."""


@dataclass(frozen=True)
class Ambiguity:
    """A missing count is ambiguous if any ``keys`` or both keys of any ``pairs`` are positive."""

    keys: frozenset[str]
    pairs: tuple[tuple[str, str], ...]

    def hit(self, usage: Mapping[str, int]) -> bool:
        if not self.keys and not self.pairs:
            return False
        for key, value in usage.items():
            if value > 0 and key in self.keys:
                return True
        return any(usage.get(a, 0) > 0 and usage.get(b, 0) > 0 for a, b in self.pairs)


class Parts(NamedTuple):
    total: Decimal
    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    requests: Decimal


class InvalidUsageError(ValueError):
    """Usage that cannot be priced consistently."""


_Step = tuple[
    str, tuple[int, ...], "Ambiguity | None", tuple[tuple[int, Decimal], ...], Decimal | None, Decimal, int, int
]
"""A priced unit as ``parts`` reads it: usage key, subtract, ambiguity (None: never), tiers, price per unit,
price, per, part."""


@dataclass(frozen=True)
class CompiledPrice:
    units: tuple[PricedUnit, ...]
    tiered: bool
    ambiguous_input_if: Ambiguity
    description: str
    input_unit: PricedUnit | None = None
    """The plain input-token price, for cache savings."""

    def parts(self, usage: Mapping[str, int], request_fee: bool = True) -> Parts:
        """(total, input, output, cache_read, cache_write, requests) in USD; raises InvalidUsageError.

        ``request_fee=False`` leaves a per-request fee out: a call's extra model passes pay tokens only.
        """
        return Parts(*self._sums(usage, request_fee))

    def _sums(self, usage: Mapping[str, int], request_fee: bool) -> tuple[Decimal, ...]:
        """``parts`` as a plain tuple (what ``cost`` unpacks on every call)."""
        total_input = 0
        if self.tiered:
            total_input = _count(usage, "input_tokens", self.ambiguous_input_if)
        leaves: list[int] = []
        total = _ZERO
        sums = [_ZERO, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO]  # other, input, output, cache r/w, requests
        get = usage.get
        for key, subtract, ambiguous_if, tiers, per_unit, price, per, part in self.steps:
            if key == "requests":
                leaf = 1 if request_fee else 0
            else:
                count = get(key)  # the count, less what more specific priced units charged (inlined: every call)
                if count is not None:
                    leaf = count
                else:
                    leaf = _count(usage, key, ambiguous_if) if ambiguous_if is not None else 0
                for index in subtract:
                    leaf -= leaves[index]
                if leaf < 0:
                    raise self._exceeded(usage, len(leaves))
            leaves.append(leaf)
            if not leaf:
                continue
            if tiers:
                for start, tier_price in tiers:
                    if total_input > start:
                        price = tier_price
                        break
                amount = price * leaf / per
            elif per_unit is not None:
                amount = per_unit * leaf
            else:
                amount = price * leaf / per
            total += amount
            sums[part] += amount
        return total, sums[1], sums[2], sums[3], sums[4], sums[5]

    @cached_property
    def steps(self) -> tuple[_Step, ...]:
        """The units as plain tuples, in order: unpacked once per unit in ``parts`` (cheaper than attributes)."""
        return tuple(
            (
                unit.usage_key,
                unit.subtract,
                None if not unit.ambiguous_if.keys and not unit.ambiguous_if.pairs else unit.ambiguous_if,
                unit.tiers,
                unit.price_per_unit,
                unit.price,
                unit.per,
                unit.part,
            )
            for unit in self.units
        )

    def _exceeded(self, usage: Mapping[str, int], index: int) -> InvalidUsageError:
        unit = self.units[index]
        parts = [usage_key for usage_key in self._more_specific(unit) if usage.get(usage_key)]
        verb = "exceeds" if len(parts) == 1 else "exceed"
        return InvalidUsageError(f"{' + '.join(parts)} {verb} {unit.usage_key}")

    def cost(
        self,
        usage: Mapping[str, int],
        model: str,
        provider: str,
        factor: Decimal | None,
        request_fee: bool = True,
    ) -> CostResult:
        try:
            total, uncached, output, cache_read, cache_write, requests = self._sums(usage, request_fee)
        except InvalidUsageError as error:
            return CostResult(PricingStatus.INVALID_USAGE, model=model, provider=provider, detail=str(error))
        savings = self.cache_savings(usage, cache_read)
        if factor is not None:
            total, uncached, output = total * factor, uncached * factor, output * factor
            cache_read, cache_write, savings = cache_read * factor, cache_write * factor, savings * factor
            requests = requests * factor
        return CostResult(
            PricingStatus.PRICED,
            total,
            uncached,
            output,
            cache_read,
            cache_write,
            "pricing",
            model,
            provider,
            savings,
            requests,
        )

    def _more_specific(self, unit: PricedUnit) -> list[str]:
        return [self.units[index].usage_key for index in unit.subtract]

    def cache_savings(self, usage: Mapping[str, int], cache_read_cost: Decimal) -> Decimal:
        """What the cache-read tokens would have cost as plain input, less what they did cost."""
        cached = usage.get("cache_read_tokens")
        input_unit = self.input_unit
        if not cached or input_unit is None or not cache_read_cost:
            return _ZERO
        if not input_unit.tiers and input_unit.price_per_unit is not None:
            return input_unit.price_per_unit * cached - cache_read_cost
        price = input_unit.price
        total_input = usage.get("input_tokens", 0)
        for start, tier_price in input_unit.tiers:
            if total_input > start:
                price = tier_price
                break
        return price * cached / input_unit.per - cache_read_cost


def _count(usage: Mapping[str, int], key: str, ambiguous_if: Ambiguity) -> int:
    value = usage.get(key)
    if value is not None:
        return value
    if ambiguous_if.hit(usage):
        raise InvalidUsageError(f"{key} is missing but more specific counts were given")
    return 0


def compile_model_price(model_price: Any) -> CompiledPrice:
    """Compile a genai-prices ``ModelPrice`` (built-in or from an override file)."""
    from genai_prices import types as gp

    registry = unit_registry()
    priced: list[tuple[Any, Any]] = []
    for key, value in model_price.__dict__.items():
        if key.startswith("_") or value is None:
            continue
        priced.append((registry.unit_for_price_key(key), value))
    priced.sort(key=lambda pair: (-len(pair[0].dimensions), pair[0].usage_key))
    units: list[PricedUnit] = []
    for index, (unit, value) in enumerate(priced):
        subtract = tuple(
            other_index for other_index, (other, _) in enumerate(priced[:index]) if _is_descendant_or_self(unit, other)
        )
        if isinstance(value, gp.TieredPrices):
            price, tiers = value.base, tuple((t.start, t.price) for t in sorted(value.tiers, key=lambda t: -t.start))
        else:
            price, tiers = value, ()
        exact = str(unit.per).rstrip("0") == "1"
        units.append(
            PricedUnit(
                unit.usage_key,
                unit.per,
                price,
                tiers,
                _part(unit),
                subtract,
                _ambiguity(unit, registry),
                price / unit.per if exact else None,
            )
        )
    tiered = any(u.tiers for u in units)
    input_unit = registry.units["input_tokens"]
    plain_input = next((u for u in units if u.usage_key == "input_tokens"), None)
    return CompiledPrice(tuple(units), tiered, _ambiguity(input_unit, registry), str(model_price), plain_input)


@cache
def unit_registry() -> Any:
    """genai-prices' units (public data, ``genai_prices.data_units``) in its public ``UnitRegistry``."""
    from genai_prices.data_units import unit_data
    from genai_prices.units import UnitRegistry

    return UnitRegistry(unit_data)


def _is_descendant_or_self(ancestor: Any, descendant: Any) -> bool:
    return bool(ancestor.dimensions.items() <= descendant.dimensions.items())


_PARTS = {"input": 1, "output": 2, "cache_read": 3, "cache_write": 4}
_FEE_FAMILIES = ("requests", "tool_calls")


def _part(unit: Any) -> int:
    if unit.dimensions.get("family") in _FEE_FAMILIES:
        return 5
    token_type = unit.dimensions.get("token_type")
    if token_type in ("cache_read", "cache_write"):
        return _PARTS[token_type]
    return _PARTS.get(unit.dimensions.get("direction"), 0)


def _ambiguity(unit: Any, registry: Any) -> Ambiguity:
    """Mirror genai-prices: a missing count is an error when more specific usage was reported,
    or when two reported overlapping units together name exactly this unit."""
    return _ambiguity_of(unit.usage_key, registry)


@cache
def _ambiguity_of(usage_key: str, registry: Any) -> Ambiguity:
    unit = registry.units[usage_key]
    others = [u for u in registry.units.values() if u is not unit and u.usage_key != "requests"]
    keys = frozenset(u.usage_key for u in others if _is_descendant_or_self(unit, u))
    pairs: list[tuple[str, str]] = []
    for i, left in enumerate(sorted(others, key=lambda u: u.usage_key)):
        for right in sorted(others, key=lambda u: u.usage_key)[i + 1 :]:
            if not left.is_compatible_with(right):
                continue
            if _is_descendant_or_self(left, right) or _is_descendant_or_self(right, left):
                continue
            if dict(unit.dimensions) == {**left.dimensions, **right.dimensions}:
                pairs.append((left.usage_key, right.usage_key))
    return Ambiguity(keys, tuple(pairs))
