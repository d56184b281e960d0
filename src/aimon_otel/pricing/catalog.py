"""genai-prices' bundled price data, looked up by provider and model, loaded off the hot path.

We build our own snapshot from the package's bundled data and never start its network
updater, so prices are offline and deterministic even if the host app updates genai-prices'
own snapshot. Loading takes about 0.3 s, so ``warm_up()`` does it in a background thread
at ``instrument()``; the first call waits for it only if it is not done yet.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from aimon_otel.pricing.compiled import CompiledPrice, compile_model_price

# gen_ai.provider.name -> genai-prices provider id
PROVIDER_IDS: dict[str, str] = {
    "openai": "openai",
    "azure.ai.openai": "azure",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "gcp.vertex_ai": "google",
    "gcp.gemini": "google",
    "gcp.gen_ai": "google",
    "openrouter": "openrouter",
    "groq": "groq",
    "deepseek": "deepseek",
    "x_ai": "x-ai",
    "mistral_ai": "mistral",
    "together": "together",
    "fireworks": "fireworks",
    "perplexity": "perplexity",
    "cohere": "cohere",
}


MAX_COMPILED_PER_MODEL = 64
"""Compiled prices kept per model (a key per day, or per minute for time-of-day prices)."""


class _Model:
    """One genai-prices model with its compiled prices per price period."""

    __slots__ = ("compiled", "daily", "info", "provider_id", "takes_context")

    def __init__(self, info: Any, provider: Any) -> None:
        self.info = info
        self.provider_id: str = provider.id
        # genai-prices applies request variants (service tier, batch) only to a provider's own models.
        self.takes_context = any(info is m for m in provider.models)
        prices = info.prices if isinstance(info.prices, list) else []
        constraints = [p.constraint for p in prices] + [v.constraint for v in info.price_variants or ()]
        # Start dates change prices at UTC midnight; time-of-day prices (off-peak) need the time.
        self.daily = all(type(c).__name__ in ("StartDateConstraint", "NoneType") for c in constraints)
        self.compiled: dict[tuple[Any, ...], CompiledPrice] = {}

    def price_at(self, when: datetime, context: tuple[tuple[str, str], ...]) -> CompiledPrice:
        key: tuple[Any, ...] = (
            (when.date(), context) if self.daily else (when.replace(second=0, microsecond=0), context)
        )
        compiled = self.compiled.get(key)
        if compiled is None:
            variants = dict(context) if context and self.takes_context else None
            compiled = compile_model_price(self.info.get_prices(when, variants))
            if len(self.compiled) >= MAX_COMPILED_PER_MODEL:
                # Time-of-day prices make a key per minute: keep memory flat by starting over
                # (compiling again costs ~100 us, once per key).
                self.compiled.clear()
            self.compiled[key] = compiled
        return compiled


MAX_CACHED_LOOKUPS = 10_000


class Catalog:
    """Model lookups and compiled prices, cached per (provider, model)."""

    def __init__(self) -> None:
        self._snapshot: Any = None
        self._loaded = threading.Event()
        self._lock = threading.Lock()
        self._models: dict[tuple[str | None, str], _Model | None] = {}

    def warm_up(self) -> None:
        """Load the price data in a background thread."""
        threading.Thread(target=self._load, name="aimon-pricing-load", daemon=True).start()

    def _load(self) -> Any:
        with self._lock:
            if self._snapshot is None:
                from genai_prices.data import providers
                from genai_prices.data_snapshot import DataSnapshot

                self._snapshot = DataSnapshot(providers=providers, from_auto_update=False)
                self._loaded.set()
        return self._snapshot

    def model(self, provider: str | None, model: str) -> _Model | None:
        key = (provider, model)
        try:
            return self._models[key]
        except KeyError:
            pass
        snapshot = self._snapshot if self._loaded.is_set() else self._load()
        provider_id = PROVIDER_IDS.get(provider, provider) if provider else None
        found: _Model | None
        try:
            price_provider, info = snapshot.find_provider_model(model, None, provider_id, None)
            found = _Model(info, price_provider)
        except LookupError:
            found = None
        if found is not None or len(self._models) < MAX_CACHED_LOOKUPS:
            # Runaway unknown names (a model id built from user input) must not grow memory without end.
            self._models[key] = found
        return found

    def providers_of(self, model: str) -> list[str]:
        """genai-prices ids of the providers that claim this model name (by their name patterns), else that price it."""
        snapshot = self._snapshot if self._loaded.is_set() else self._load()
        name = model.lower()
        pricing = [p for p in snapshot.providers if p.find_model(name) is not None]
        claimed = [p.id for p in pricing if p.model_match is not None and p.model_match.is_match(name)]
        return claimed or [p.id for p in pricing]

    def service_tiers(self) -> set[str]:
        """Every service tier some price depends on, and the names of the standard tier."""
        snapshot = self._snapshot if self._loaded.is_set() else self._load()
        tiers = {"default", "standard", "auto"}
        for provider in snapshot.providers:
            for model in provider.models:
                for variant in model.price_variants or ():
                    tier = (variant.when or {}).get("service_tier")
                    if isinstance(tier, str):
                        tiers.add(tier)
        return tiers


def utc_now() -> datetime:
    return datetime.now(UTC)
