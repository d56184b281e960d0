"""Prices that update while the app runs: genai-prices' own ``UpdatePrices`` fetches, we compare and install.

Opt-in (``AIMON_PRICES_UPDATE=1h``). Each fetch is checked (a non-empty provider array that genai-prices
can read), compared with the prices in force, and installed in the catalog off the call path: calls that
start after it lands are priced with it, calls under way keep the prices they started with. Every change
is a notice: a log line for each model this app has priced (with a count of the others), a
``PriceChange`` to each ``on_price_change`` listener, and for the models in use the gauge
``aimon.pricing.change`` (one series per changed price, old and new in its attributes, for a day) that the
``GenAIPriceChanged`` alert reads. A failed fetch (network, 500, malformed or truncated JSON) keeps the
prices in use; genai-prices logs it once per interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from aimon_otel import semconv
from aimon_otel.faults import report_fault
from aimon_otel.pricing.catalog import Catalog, utc_now
from aimon_otel.pricing.changes import PriceChange, diff

logger = logging.getLogger("aimon_otel.pricing")
SHOWN_FOR = 86_400.0
"""Seconds a change stays on the gauge (and so can fire its alert)."""


class PriceListeners:
    """``on_price_change`` subscribers; one that raises is logged once and never stops the others."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[PriceChange], Any]] = []
        self._reported: set[int] = set()

    def subscribe(self, listener: Callable[[PriceChange], Any]) -> Callable[[], None]:
        self._listeners = [*self._listeners, listener]

        def unsubscribe() -> None:
            self._listeners = [known for known in self._listeners if known is not listener]

        return unsubscribe

    def send(self, change: PriceChange) -> None:
        for listener in self._listeners:
            try:
                listener(change)
            except Exception as error:
                if id(listener) not in self._reported:
                    self._reported.add(id(listener))
                    logger.warning(
                        "aimon-otel: the price change listener %s raised %s: %s (logged once per listener)",
                        getattr(listener, "__qualname__", repr(listener)),
                        type(error).__name__,
                        error,
                    )


LISTENERS = PriceListeners()


def on_price_change(listener: Callable[[PriceChange], Any]) -> Callable[[], None]:
    """Call ``listener(change)`` for every model whose price changed in a fetched update; returns what
    unsubscribes. Listeners run on the updater's thread."""
    return LISTENERS.subscribe(listener)


class PriceUpdater:
    """Runs genai-prices' updater with our check, comparison and install on each fetched data set."""

    def __init__(
        self, catalog: Catalog, interval: float, url: str | None, meter: Meter, listeners: PriceListeners = LISTENERS
    ) -> None:
        from genai_prices import UpdatePrices
        from genai_prices.update_prices import DEFAULT_UPDATE_URL

        self.catalog = catalog
        self.url = url or DEFAULT_UPDATE_URL
        self.listeners = listeners
        self._shown: list[tuple[float, PriceChange]] = []
        self._lock = threading.Lock()
        self.updates = 0
        """Data sets installed (for tests and the log)."""
        self._updated = threading.Condition()
        meter.create_observable_gauge(
            "aimon.pricing.change",
            callbacks=[self._observe],
            unit="s",
            description="When a price of a model in use changed (old and new price in the attributes)",
        )
        updater = self

        class _Fetcher(UpdatePrices):
            def fetch(self) -> Any:
                snapshot = super().fetch()  # raises on network errors, HTTP errors and bad JSON
                if snapshot is None or not snapshot.providers:
                    raise ValueError(f"{updater.url} answered no providers; the prices in use are kept")
                updater.landed(list(snapshot.providers))
                return snapshot

        self._fetcher = _Fetcher(update_interval=interval, url=self.url)
        self._fetcher.start()

    def landed(self, providers: list[Any]) -> None:
        """New data: compare, install, tell. A fault here keeps the old prices and is logged."""
        try:
            now = utc_now()
            in_use = self.catalog.in_use()
            changes = diff(self.catalog.providers, providers, now)
            self.catalog.install(providers, now, self.url)
            self._notify(changes, in_use)
        except Exception as fault:
            report_fault("price update", fault)
            return
        with self._updated:
            self.updates += 1
            self._updated.notify_all()

    def _notify(self, changes: list[PriceChange], in_use: set[tuple[str, str]]) -> None:
        shown = [change for change in changes if (change.provider, change.model) in in_use]
        for change in shown:
            logger.warning("aimon-otel: price change: %s", change.describe())
        others = len(changes) - len(shown)
        if others:
            logger.info(
                "aimon-otel: %d other models' prices changed in %s (models this app has not priced; "
                "`aimon-otel pricing diff` lists them)",
                others,
                self.url,
            )
        stamp = time.time()
        with self._lock:
            self._shown = [(at, c) for at, c in self._shown if stamp - at < SHOWN_FOR]
            self._shown += [(stamp, change) for change in shown]
        for change in changes:
            self.listeners.send(change)

    def _observe(self, options: CallbackOptions) -> list[Observation]:
        stamp = time.time()
        observations = []
        with self._lock:
            shown = [(at, change) for at, change in self._shown if stamp - at < SHOWN_FOR]
        for at, change in shown:
            for price, old, new in change.prices:
                observations.append(
                    Observation(
                        at,
                        {
                            semconv.PRICING_PROVIDER: change.provider,
                            semconv.PRICING_MODEL: change.model,
                            "aimon.price.change": change.kind,
                            "aimon.price.name": price,
                            "aimon.price.old": old or "none",
                            "aimon.price.new": new or "none",
                        },
                    )
                )
        return observations

    def wait_for_update(self, updates: int, timeout: float) -> bool:
        with self._updated:
            return self._updated.wait_for(lambda: self.updates >= updates, timeout)

    def close(self) -> None:
        self._fetcher.stop()  # type: ignore[no-untyped-call]
