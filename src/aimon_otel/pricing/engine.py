"""One pricing engine for the instrumentation, the span processor, the CLI and ``cost()``.

Order: a provider-reported cost wins; then the user's alias and custom prices; then
genai-prices' table; a multiplier (negotiated discount) applies to table and custom prices.
An unknown model is never priced at $0: it is reported as ``unknown_model``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from aimon_otel.faults import logger
from aimon_otel.instrumentation.usage import Usage
from aimon_otel.pricing.catalog import MAX_CACHED_LOOKUPS, PROVIDER_IDS, Catalog, utc_now
from aimon_otel.pricing.compiled import CompiledPrice
from aimon_otel.pricing.overrides import Overrides
from aimon_otel.pricing.result import CostResult, PricingStatus


def usage_counts(usage: Usage) -> dict[str, int]:
    """Our usage in genai-prices' unit names (only what the response reported)."""
    counts: dict[str, int] = {}
    for key, value in (
        ("input_tokens", usage.input_tokens),
        ("output_tokens", usage.output_tokens),
        ("cache_read_tokens", usage.cache_read_input_tokens),
        ("cache_write_tokens", usage.cache_creation_input_tokens),
        ("cache_write_5m_tokens", usage.cache_creation_5m_input_tokens),
        ("cache_write_1h_tokens", usage.cache_creation_1h_input_tokens),
        ("output_reasoning_tokens", usage.reasoning_output_tokens),
        ("input_audio_tokens", usage.audio_input_tokens),
        ("input_image_tokens", usage.image_input_tokens),
        ("output_audio_tokens", usage.audio_output_tokens),
        ("web_searches", usage.web_searches),
    ):
        if value is not None:
            counts[key] = value
    for key, value in usage.modality_tokens:
        counts[key] = counts.get(key, 0) + value
    return counts


MAX_WARNED_MODELS = 1000


class _InForce(NamedTuple):
    """A model's compiled price for calls that start in ``[start, end)`` while ``prices`` are in force."""

    prices: object
    start: float
    end: float
    compiled: CompiledPrice
    model_id: str
    provider_id: str


class PricingEngine:
    def __init__(self, overrides: Overrides | None = None, catalog: Catalog | None = None) -> None:
        self.overrides = overrides or Overrides()
        self.catalog = catalog or Catalog()
        self._warned: set[tuple[str, ...]] = set()
        self._in_force: dict[tuple[str, str, str | None], _InForce] = {}
        """By provider, model and service tier (what the call's compiled price depends on besides the time)."""

    def price(
        self,
        provider: str,
        model: str | None,
        usage: Usage | None,
        *,
        at: datetime | float | None = None,
        service_tier: str | None = None,
        provider_cost: float | None = None,
    ) -> CostResult:
        if provider_cost is not None:
            return CostResult(
                PricingStatus.PRICED, Decimal(repr(provider_cost)), source="provider", model=model, provider=provider
            )
        if usage is None:
            return CostResult(PricingStatus.NO_USAGE)
        if not model:
            return CostResult(PricingStatus.UNKNOWN_MODEL)
        if usage.problems:
            self._warn_invalid(provider, model, usage.problems)
            return CostResult(PricingStatus.INVALID_USAGE)
        if usage.passes:
            return self._price_passes(provider, model, usage, at=at, service_tier=service_tier)
        if usage.images is not None and usage.input_tokens is None:
            return self._price_images(provider, model, usage)
        return self.price_counts(provider, model, usage_counts(usage), at=at, service_tier=service_tier)

    def _price_images(self, provider: str, model: str, usage: Usage) -> CostResult:
        """Images priced per image (DALL·E): the override file's price for the size and quality asked."""
        name = self.overrides.resolve_alias(provider, model)
        each = self.overrides.image_price(provider, name, usage.image_size, usage.image_quality)
        if each is None:
            self._warn_unknown(provider, model)
            return CostResult(PricingStatus.UNKNOWN_MODEL, provider=PROVIDER_IDS.get(provider, provider))
        total = each * (usage.images or 0)
        return CostResult(PricingStatus.PRICED, total, output=total, model=name, provider=provider)

    def _price_passes(
        self, provider: str, model: str, usage: Usage, *, at: datetime | float | None, service_tier: str | None
    ) -> CostResult:
        """A call of several model passes: each pass's tokens at its model's price, fees once."""
        results = [
            self.price_counts(
                provider, pass_model or model, usage_counts(part), at=at, service_tier=service_tier, request_fee=False
            )
            for pass_model, part in usage.passes
        ]
        fees = {"web_searches": usage.web_searches} if usage.web_searches else {}
        results.append(self.price_counts(provider, model, fees, at=at, service_tier=service_tier))
        for result in results:
            if not result.priced:
                return result
        main = results[-1]
        total = CostResult(PricingStatus.PRICED, Decimal(0), model=main.model, provider=main.provider)
        for result in results:
            assert result.total is not None
            total.total = (total.total or Decimal(0)) + result.total
            total.input += result.input
            total.output += result.output
            total.cache_read += result.cache_read
            total.cache_write += result.cache_write
            total.requests += result.requests
            total.cache_savings += result.cache_savings
        return total

    def price_counts(
        self,
        provider: str,
        model: str,
        counts: Mapping[str, int],
        *,
        at: datetime | float | None = None,
        service_tier: str | None = None,
        request_fee: bool = True,
    ) -> CostResult:
        """Price usage given in genai-prices' unit names (``input_tokens``, ``cache_read_tokens``...) at the
        prices in force ``at`` (the call's start: a datetime or epoch seconds; None: now)."""
        overrides = self.overrides
        moment = None
        if not isinstance(at, datetime) and overrides.empty:  # what nearly every call is
            moment = time.time() if at is None else at
            known = self._in_force.get((provider, model, service_tier))
            if known is not None and known.start <= moment < known.end and known.prices is self.catalog.in_force:
                return known.compiled.cost(counts, known.model_id, known.provider_id, None, request_fee)
            when = datetime.fromtimestamp(moment, UTC)
        elif at is None:
            when = utc_now()
        else:
            when = at if isinstance(at, datetime) else datetime.fromtimestamp(at, UTC)
        name, factor = model, None
        if not overrides.empty:
            name = overrides.resolve_alias(provider, model)
            factor = overrides.factor(provider, name)
            custom = overrides.custom_price(provider, name, when.date())
            if custom is not None:
                return custom.cost(counts, name, provider, factor, request_fee)
        found = self.catalog.model(provider, name, when)
        if found is None:
            self._warn_unknown(provider, model)
            return CostResult(PricingStatus.UNKNOWN_MODEL, provider=PROVIDER_IDS.get(provider, provider))
        if factor is None and name != found.info.id and not overrides.empty:
            factor = overrides.factor(provider, found.info.id)
        context = (("service_tier", service_tier),) if service_tier else ()
        compiled = found.price_at(when, context)
        if moment is not None:
            self._keep_in_force((provider, model, service_tier), found, compiled, moment)
        return compiled.cost(counts, found.info.id, found.provider_id, factor, request_fee)

    def _keep_in_force(
        self, key: tuple[str, str, str | None], found: Any, compiled: CompiledPrice, moment: float
    ) -> None:
        """Remember a model's price for calls that start in the same span: the UTC day (start dates), the minute
        (time-of-day prices), while the same price data is in force and the call started after it landed."""
        since = self.catalog.in_force_since
        if moment < since:  # priced with the data in force before (the call started before these prices)
            return
        span = 86400 if found.daily else 60
        start = max(moment // span * span, since)
        if len(self._in_force) >= MAX_CACHED_LOOKUPS:
            self._in_force.clear()
        self._in_force[key] = _InForce(
            self.catalog.in_force, start, start + span, compiled, found.info.id, found.provider_id
        )

    def _warn_invalid(self, provider: str, model: str, problems: tuple[str, ...]) -> None:
        key = ("invalid_usage", provider, model)
        if key in self._warned or len(self._warned) > MAX_WARNED_MODELS:
            return
        self._warned.add(key)
        logger.warning(
            "aimon-otel: %r reported usage for model %r that cannot be priced (%s); such calls are reported as "
            "aimon.pricing.status=invalid_usage with no cost (logged once per model)",
            provider,
            model,
            "; ".join(problems),
        )

    def _warn_unknown(self, provider: str, model: str) -> None:
        key = (provider, model)
        if key in self._warned:
            return
        if len(self._warned) >= MAX_WARNED_MODELS:
            if len(self._warned) == MAX_WARNED_MODELS:
                self._warned.add(("", ""))
                logger.warning(
                    "aimon-otel: %d unknown models seen; no more are logged (aimon.pricing.unpriced_calls counts them)",
                    MAX_WARNED_MODELS,
                )
            return
        self._warned.add(key)
        logger.warning(
            "aimon-otel: no price for model %r of provider %r; its calls are reported as "
            "aimon.pricing.status=unknown_model, never as $0. Add it to AIMON_PRICING_FILE "
            "(see `aimon-otel pricing check`).",
            model,
            provider,
        )
