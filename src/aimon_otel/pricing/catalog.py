"""genai-prices' bundled price data, looked up by provider and model, loaded off the hot path.

We build our own snapshot from the package's bundled data and never start its network
updater, so prices are offline and deterministic even if the host app updates genai-prices'
own snapshot. Loading takes about 0.3 s, so ``warm_up()`` does it in a background thread
at ``instrument()``; the first call waits for it only if it is not done yet.
"""

from __future__ import annotations

import atexit
import math
import threading
from datetime import UTC, datetime
from typing import Any, NamedTuple

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


class _Generation(NamedTuple):
    """One set of prices: the data, the models looked up in it, and when it came into force."""

    snapshot: Any
    models: dict[tuple[str | None, str], _Model | None]
    since: datetime | None
    """None: the bundled data, in force from the start."""


class Catalog:
    """Model lookups and compiled prices, cached per (provider, model).

    Fetched prices (``install``) come into force for calls that start after they land: a call that
    started before is priced with the data in force at its start (the previous set is kept for that).
    """

    def __init__(self) -> None:
        self._generation: _Generation | None = None
        self._previous: _Generation | None = None
        self._loaded = threading.Event()
        self._lock = threading.Lock()
        self.fetched: tuple[datetime, str] | None = None
        """When prices were last fetched, and from where; None: the bundled data is in use."""

    def warm_up(self) -> None:
        """Load the price data in a background thread.

        The load imports genai-prices' data module. A process that exits while that import is under way
        must wait for it (at exit, before the interpreter shuts down): a daemon thread frozen mid-import
        holds the import lock, and a library that imports in a ``__del__`` at shutdown (LiteLLM's HTTP
        handler does) would then hang the exit for ever."""
        if self._loaded.is_set():
            return
        loader = threading.Thread(target=self._load, name="aimon-pricing-load", daemon=True)
        loader.start()
        atexit.register(loader.join, 30.0)

    def _load(self) -> _Generation:
        with self._lock:
            if self._generation is None:
                from genai_prices.data import providers
                from genai_prices.data_snapshot import DataSnapshot

                self._generation = _Generation(DataSnapshot(providers=providers, from_auto_update=False), {}, None)
                self._loaded.set()
            return self._generation

    def _current(self) -> _Generation:
        generation = self._generation
        return generation if generation is not None else self._load()

    @property
    def in_force(self) -> object:
        """The price data in force (an opaque token: a new one each time prices are installed)."""
        return self._generation

    @property
    def in_force_since(self) -> float:
        """When the data in force landed (epoch seconds); -inf for the bundled data, in force from the start."""
        generation = self._generation
        if generation is None or generation.since is None:
            return -math.inf
        return generation.since.timestamp()

    @property
    def providers(self) -> list[Any]:
        """The genai-prices providers of the prices in force."""
        return list(self._current().snapshot.providers)

    def model(self, provider: str | None, model: str, at: datetime | None = None) -> _Model | None:
        generation = self._current()
        previous = self._previous
        if previous is not None and at is not None and generation.since is not None and at < generation.since:
            generation = previous  # the call started before these prices landed
        key = (provider, model)
        models = generation.models
        try:
            return models[key]
        except KeyError:
            pass
        found = _lookup(generation.snapshot, provider, model)
        if found is not None or len(models) < MAX_CACHED_LOOKUPS:
            # Runaway unknown names (a model id built from user input) must not grow memory without end.
            models[key] = found
        return found

    def in_use(self) -> set[tuple[str, str]]:
        """(provider id, model id) of every priced model looked up so far: the models this app calls."""
        return {(m.provider_id, m.info.id) for m in list(self._current().models.values()) if m is not None}

    def install(self, providers: list[Any], now: datetime, source: str) -> None:
        """Put fetched prices in force for calls that start from ``now``. The models in use are looked up
        and compiled here, off the call path; names that were unknown are looked up again when next asked."""
        from genai_prices.data_snapshot import DataSnapshot

        snapshot = DataSnapshot(providers=providers, from_auto_update=True)
        current = self._current()
        models: dict[tuple[str | None, str], _Model | None] = {}
        for key, known in list(current.models.items()):
            if known is None:
                continue
            found = _lookup(snapshot, *key)
            if found is not None:
                found.price_at(now, ())
            models[key] = found
        with self._lock:
            self._previous = self._generation
            self._generation = _Generation(snapshot, models, now)
            self.fetched = (now, source)

    def providers_of(self, model: str) -> list[str]:
        """genai-prices ids of the providers that claim this model name (by their name patterns), else that price it."""
        snapshot = self._current().snapshot
        name = model.lower()
        pricing = [p for p in snapshot.providers if p.find_model(name) is not None]
        claimed = [p.id for p in pricing if p.model_match is not None and p.model_match.is_match(name)]
        return claimed or [p.id for p in pricing]

    def service_tiers(self) -> set[str]:
        """Every service tier some price depends on, and the names of the standard tier."""
        snapshot = self._current().snapshot
        tiers = {"default", "standard", "auto"}
        for provider in snapshot.providers:
            for model in provider.models:
                for variant in model.price_variants or ():
                    tier = (variant.when or {}).get("service_tier")
                    if isinstance(tier, str):
                        tiers.add(tier)
        return tiers


def _lookup(snapshot: Any, provider: str | None, model: str) -> _Model | None:
    provider_id = PROVIDER_IDS.get(provider, provider) if provider else None
    try:
        price_provider, info = snapshot.find_provider_model(model, None, provider_id, None)
    except LookupError:
        return None
    return _Model(info, price_provider)


def utc_now() -> datetime:
    return datetime.now(UTC)
