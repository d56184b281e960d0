"""The user's own prices: custom and fine-tuned models, aliases, negotiated discounts.

From a YAML or TOML file (``AIMON_PRICING_FILE``) or in code. A bad file fails at start-up
with the file, the entry and what to change; nothing is guessed::

    aliases:            # e.g. an Azure deployment name -> the model it serves
      - {model: prod-gpt4o, target: gpt-4o, provider: azure.ai.openai}
    models:             # absolute prices in USD per million tokens, optionally dated
      - model: ft:gpt-4o-mini:acme::x1
        provider: openai
        prices:
          - {input_mtok: 0.3, output_mtok: 1.2, cache_read_mtok: 0.15, effective_from: 2025-01-01}
    multipliers:        # negotiated discounts, on prices from the table
      - {provider: openai, factor: 0.8}
      - {provider: anthropic, model: claude-*, factor: 0.9}
    images:             # models priced per image (DALL·E): USD per image by size and quality
      - model: dall-e-3
        provider: openai
        prices:
          - {size: 1024x1024, quality: standard, usd_per_image: 0.04}
          - {size: 1024x1024, quality: hd, usd_per_image: 0.08}
          - {size: 1024x1792, usd_per_image: 0.08}     # no quality: any quality
    checked: 2026-11-01 # when these prices were last compared with the provider's (see freshness.py)
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from aimon_otel.errors import AimonConfigError
from aimon_otel.pricing.compiled import CompiledPrice, compile_model_price

PRICE_KEYS = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "cache_write_5m_mtok",
    "cache_write_1h_mtok",
    "input_audio_mtok",
    "output_audio_mtok",
)
_SECTIONS = ("aliases", "models", "multipliers", "images", "checked")
MAX_PRICE_MTOK = Decimal(100_000)
"""No model costs this much per million tokens: a bigger figure is a unit mistake (or ``1e400``)."""
MAX_FACTOR = Decimal(100)
MAX_IMAGE_USD = Decimal(100)
"""No image costs this much; a bigger figure is a unit mistake."""


@dataclass(frozen=True)
class DatedPrice:
    compiled: CompiledPrice
    effective_from: date | None
    effective_to: date | None
    """Exclusive."""

    def applies(self, day: date) -> bool:
        return (self.effective_from is None or day >= self.effective_from) and (
            self.effective_to is None or day < self.effective_to
        )


@dataclass(frozen=True)
class Multiplier:
    provider: str | None
    model: str | None
    """A model name or shell-style pattern (``claude-*``); None for every model."""
    factor: Decimal

    def matches(self, provider: str, model: str) -> bool:
        return (self.provider is None or self.provider == provider) and (
            self.model is None or fnmatch.fnmatchcase(model, self.model)
        )


@dataclass
class Overrides:
    """Aliases, custom models and multipliers, keyed by (provider or None, model)."""

    aliases: dict[tuple[str | None, str], str] = field(default_factory=dict)
    models: dict[tuple[str | None, str], list[DatedPrice]] = field(default_factory=dict)
    multipliers: list[Multiplier] = field(default_factory=list)
    images: dict[tuple[str | None, str], dict[tuple[str | None, str | None], Decimal]] = field(default_factory=dict)
    """Per-image prices: (provider, model) -> (size or None, quality or None) -> USD per image."""
    source: str = "code"
    checked: date | None = None
    """When the file's prices were last compared with the provider's: their age is counted from it."""

    @property
    def empty(self) -> bool:
        return not (self.aliases or self.models or self.multipliers or self.images)

    def image_price(self, provider: str, model: str, size: str | None, quality: str | None) -> Decimal | None:
        """USD per image of ``model`` at ``size`` and ``quality``; an entry without a size or quality
        matches any. None when the file prices no such image (the call is then ``unknown_model``)."""
        for key in ((provider, model), (None, model)):
            prices = self.images.get(key)
            if prices is None:
                continue
            for wanted in ((size, quality), (size, None), (None, quality), (None, None)):
                found = prices.get(wanted)
                if found is not None:
                    factor = self.factor(provider, model)
                    return found if factor is None else found * factor
        return None

    def alias(self, model: str, target: str, provider: str | None = None) -> Overrides:
        self.aliases[(provider, model)] = target
        _check_alias_cycles(self.aliases, self.source)
        return self

    def model(
        self,
        model: str,
        provider: str | None = None,
        effective_from: date | None = None,
        effective_to: date | None = None,
        **prices_per_million: float | str | Decimal,
    ) -> Overrides:
        """Add absolute prices (USD per million tokens: ``input_mtok=...``) for a model."""
        entry = {
            "model": model,
            "provider": provider,
            "prices": [{**prices_per_million, "effective_from": effective_from, "effective_to": effective_to}],
        }
        _add_model(self, entry, f"{self.source}: models[{model!r}]")
        return self

    def multiply(
        self, factor: float | str | Decimal, provider: str | None = None, model: str | None = None
    ) -> Overrides:
        self.multipliers.append(Multiplier(provider, model, _decimal(factor, f"{self.source}: multiplier", "factor")))
        return self

    def resolve_alias(self, provider: str, model: str) -> str:
        """Follow aliases to the model they name (chains allowed; cycles are refused at load)."""
        for _ in range(len(self.aliases) + 1):
            target = self.aliases.get((provider, model)) or self.aliases.get((None, model))
            if target is None or target == model:
                return model
            model = target
        return model

    def custom_price(self, provider: str, model: str, day: date) -> CompiledPrice | None:
        for key in ((provider, model), (None, model)):
            for dated in self.models.get(key, ()):
                if dated.applies(day):
                    return dated.compiled
        return None

    def factor(self, provider: str, model: str) -> Decimal | None:
        factor: Decimal | None = None
        for multiplier in self.multipliers:
            if multiplier.matches(provider, model):
                factor = multiplier.factor if factor is None else factor * multiplier.factor
        return factor

    def referenced_models(self) -> list[tuple[str | None, str]]:
        """Alias targets, for ``aimon-otel pricing check`` to look up."""
        return [(provider, target) for (provider, _), target in self.aliases.items()]


def load_overrides(path: str | Path) -> Overrides:
    """Read and validate an override file (``.yaml``/``.yml`` or ``.toml``)."""
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AimonConfigError(
            f"{name}: cannot read the pricing file ({exc.strerror}); check AIMON_PRICING_FILE"
        ) from None
    data = _parse(name, path.suffix.lower(), text)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AimonConfigError(f"{name}: the top level must be a mapping with keys {list(_SECTIONS)}")
    unknown = sorted(set(map(str, data)) - set(_SECTIONS))
    if unknown:
        raise AimonConfigError(f"{name}: unknown section(s) {unknown}; the sections are {list(_SECTIONS)}")
    overrides = Overrides(source=name, checked=_checked(data.get("checked"), name))
    alias_at: dict[tuple[str | None, str], str] = {}
    for index, entry in enumerate(_list(data, "aliases", name)):
        where = f"{name}: aliases[{index}]"
        _keys(entry, where, required=("model", "target"), optional=("provider",))
        key = (_opt_str(entry, "provider", where), _str(entry, "model", where))
        if key in alias_at:
            raise AimonConfigError(
                f"{where}: {_describe(key)} is already aliased at {alias_at[key]}; keep one of the two"
            )
        alias_at[key] = where
        overrides.aliases[key] = _str(entry, "target", where)
    _check_alias_cycles(overrides.aliases, name)
    model_at: dict[tuple[str | None, str], str] = {}
    for index, entry in enumerate(_list(data, "models", name)):
        where = f"{name}: models[{index}]"
        if isinstance(entry, dict) and isinstance(entry.get("model"), str):
            provider = entry.get("provider")
            key = (provider if isinstance(provider, str) else None, entry["model"])
            if key in model_at:
                raise AimonConfigError(
                    f"{where}: {_describe(key)} is already priced at {model_at[key]}; give one entry a list of "
                    "prices with effective_from/effective_to instead"
                )
            model_at[key] = where
        _add_model(overrides, entry, where)
    for index, entry in enumerate(_list(data, "multipliers", name)):
        where = f"{name}: multipliers[{index}]"
        _keys(entry, where, required=("factor",), optional=("provider", "model"))
        factor = _decimal(entry["factor"], where, "factor")
        if factor <= 0 or factor > MAX_FACTOR:
            raise AimonConfigError(
                f"{where}: factor must be above 0 and at most {MAX_FACTOR} (e.g. 0.8 for a 20% discount), "
                f"got {entry['factor']!r}"
            )
        overrides.multipliers.append(
            Multiplier(_opt_str(entry, "provider", where), _opt_str(entry, "model", where), factor)
        )
    for index, entry in enumerate(_list(data, "images", name)):
        _add_images(overrides, entry, f"{name}: images[{index}]")
    return overrides


def _add_images(overrides: Overrides, entry: Any, where: str) -> None:
    _keys(entry, where, required=("model", "prices"), optional=("provider",))
    key = (_opt_str(entry, "provider", where), _str(entry, "model", where))
    if key in overrides.images:
        raise AimonConfigError(f"{where}: {_describe(key)} already has image prices; keep one entry")
    prices = entry["prices"]
    if not isinstance(prices, list) or not prices:
        raise AimonConfigError(
            f"{where}: 'prices' must be a list such as [{{size: 1024x1024, quality: standard, usd_per_image: 0.04}}]"
        )
    table: dict[tuple[str | None, str | None], Decimal] = {}
    for index, price in enumerate(prices):
        at = f"{where}.prices[{index}]"
        _keys(price, at, required=("usd_per_image",), optional=("size", "quality"))
        amount = _decimal(price["usd_per_image"], at, "usd_per_image")
        if amount < 0 or amount > MAX_IMAGE_USD:
            raise AimonConfigError(
                f"{at}: usd_per_image must be between 0 and {MAX_IMAGE_USD} (USD per image, e.g. 0.04), "
                f"got {price['usd_per_image']!r}"
            )
        variant = (_opt_str(price, "size", at), _opt_str(price, "quality", at))
        if variant in table:
            raise AimonConfigError(f"{at}: size {variant[0]!r} and quality {variant[1]!r} are priced twice")
        table[variant] = amount
    overrides.images[key] = table


def _checked(value: Any, name: str) -> date | None:
    checked = _date(value, name, "checked")
    if checked is not None and checked > date.today() + timedelta(days=1):
        raise AimonConfigError(
            f"{name}: 'checked' is {checked}, in the future; give the day you last compared these prices "
            "with the provider's price page"
        )
    return checked


def _parse(name: str, suffix: str, text: str) -> Any:
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise AimonConfigError(f"{name}: not valid YAML: {exc}") from None
    if suffix == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise AimonConfigError(f"{name}: not valid TOML: {exc}") from None
    raise AimonConfigError(f"{name}: unknown pricing file type {suffix!r}; use .yaml, .yml or .toml")


def _add_model(overrides: Overrides, entry: Any, where: str) -> None:
    from genai_prices.types import ModelPrice

    _keys(entry, where, required=("model", "prices"), optional=("provider",))
    model = _str(entry, "model", where)
    provider = _opt_str(entry, "provider", where)
    prices = entry["prices"]
    if isinstance(prices, dict):
        prices = [prices]
    if not isinstance(prices, list) or not prices:
        raise AimonConfigError(
            f"{where}: 'prices' must be a list of price entries such as {{input_mtok: 0.3, output_mtok: 1.2}}"
        )
    dated: list[DatedPrice] = list(overrides.models.get((provider, model), ()))
    for index, price in enumerate(prices):
        at = f"{where}.prices[{index}]"
        _keys(price, at, required=(), optional=(*PRICE_KEYS, "effective_from", "effective_to"))
        amounts = {key: _decimal(price[key], at, key) for key in PRICE_KEYS if price.get(key) is not None}
        if "input_mtok" not in amounts or "output_mtok" not in amounts:
            raise AimonConfigError(
                f"{at}: needs both input_mtok and output_mtok (USD per million tokens); "
                "a missing price is never guessed"
            )
        for key, amount in amounts.items():
            if amount < 0:
                raise AimonConfigError(f"{at}: {key} must not be negative, got {price[key]!r}")
            if amount > MAX_PRICE_MTOK:
                raise AimonConfigError(
                    f"{at}: {key} is {price[key]!r} USD per million tokens, above {MAX_PRICE_MTOK}; "
                    "prices are in USD per million tokens (e.g. input_mtok: 2.5)"
                )
        start, end = (
            _date(price.get("effective_from"), at, "effective_from"),
            _date(price.get("effective_to"), at, "effective_to"),
        )
        if start and end and end <= start:
            raise AimonConfigError(f"{at}: effective_to ({end}) must be after effective_from ({start})")
        for other in dated:
            if _overlap(start, end, other.effective_from, other.effective_to):
                raise AimonConfigError(
                    f"{at}: its dates overlap another price of {model!r}; "
                    "give each price its own effective_from/effective_to"
                )
        dated.append(DatedPrice(compile_model_price(ModelPrice(**amounts)), start, end))
    overrides.models[(provider, model)] = dated


def _describe(key: tuple[str | None, str]) -> str:
    provider, model = key
    return f"model {model!r}" + (f" of provider {provider!r}" if provider else "")


def _check_alias_cycles(aliases: dict[tuple[str | None, str], str], name: str) -> None:
    """An alias chain must end at a model: ``a -> b -> a`` is an error naming the cycle."""
    for (provider, start), _ in aliases.items():
        chain = [start]
        current = start
        while True:
            target = aliases.get((provider, current)) or aliases.get((None, current))
            if target is None:
                break
            if target in chain:
                cycle = " -> ".join([*chain[chain.index(target) :], target])
                raise AimonConfigError(f"{name}: aliases form a cycle ({cycle}); an alias must lead to a real model")
            chain.append(target)
            current = target


def _overlap(a0: date | None, a1: date | None, b0: date | None, b1: date | None) -> bool:
    return (a0 is None or b1 is None or a0 < b1) and (b0 is None or a1 is None or b0 < a1)


def _list(data: dict[str, Any], section: str, name: str) -> list[Any]:
    value = data.get(section) or []
    if not isinstance(value, list):
        raise AimonConfigError(f"{name}: '{section}' must be a list of entries")
    return value


def _keys(entry: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    if not isinstance(entry, dict):
        raise AimonConfigError(f"{where}: must be a mapping, got {type(entry).__name__}")
    missing = [key for key in required if entry.get(key) is None]
    if missing:
        raise AimonConfigError(f"{where}: missing {missing}")
    unknown = sorted(set(map(str, entry)) - set(required) - set(optional))
    if unknown:
        raise AimonConfigError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted({*required, *optional})}")


def _str(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise AimonConfigError(f"{where}: '{key}' must be a non-empty string, got {value!r}")
    return value


def _opt_str(entry: dict[str, Any], key: str, where: str) -> str | None:
    return None if entry.get(key) is None else _str(entry, key, where)


def _decimal(value: Any, where: str, key: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise AimonConfigError(f"{where}: '{key}' must be a number, got {value!r}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise AimonConfigError(f"{where}: '{key}' must be a number, got {value!r}") from None
    if not amount.is_finite():
        raise AimonConfigError(f"{where}: '{key}' must be a finite number, got {value!r}")
    return amount


def _date(value: Any, where: str, key: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise AimonConfigError(f"{where}: '{key}' must be a date like 2025-01-31, got {value!r}")
