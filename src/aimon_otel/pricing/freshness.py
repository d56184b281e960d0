"""How old the prices are, so a price change nobody carried over is seen before the bill shows it.

genai-prices' bundled data carries no snapshot date, so its date is the day the installed release
was published (PyPI's upload time, below): its prices are those known that day. A release newer
than this table counts from the newest day here, an upper bound on its age. An override file
says when its prices were last compared with the provider's in its top-level ``checked:``; a file
with prices and no ``checked:`` has no known age, and ``aimon-otel pricing check`` says so.

Both dates are exported as ``aimon.pricing.data.timestamp`` (Unix seconds, one series per source)
so the ``LLMPricesStale`` alert fires on the running app's data, not on the CLI's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from opentelemetry.metrics import Observation
from packaging.version import InvalidVersion, Version

from aimon_otel import semconv
from aimon_otel.pricing.engine import PricingEngine
from aimon_otel.pricing.overrides import Overrides

STALE_AFTER_DAYS = 60

GENAI_PRICES_RELEASED: dict[str, date] = {
    # Source: PyPI's upload times of genai-prices (https://pypi.org/pypi/genai-prices/json), UTC day.
    "0.2.0": date(2026, 10, 29),
    "0.2.1": date(2026, 10, 30),
    "0.2.2": date(2026, 11, 10),
    "0.2.3": date(2026, 11, 10),
}


@dataclass(frozen=True)
class PriceData:
    source: str
    """``genai-prices`` or ``override``."""
    name: str
    """The genai-prices version or the override file."""
    as_of: date | None
    """The day the prices were known current; None when nobody said."""
    basis: str
    """How ``as_of`` was found, for people."""

    def age_days(self, today: date) -> int | None:
        return None if self.as_of is None else (today - self.as_of).days

    @property
    def timestamp(self) -> float | None:
        """``as_of`` as Unix seconds at UTC midnight, for the gauge."""
        return None if self.as_of is None else datetime.combine(self.as_of, time(), UTC).timestamp()


def catalog_data(installed: str | None = None) -> PriceData:
    """The date of genai-prices' bundled data, from the release table."""
    if installed is None:
        try:
            installed = version("genai-prices")
        except PackageNotFoundError:  # pragma: no cover - a dependency
            installed = "unknown"
    released = GENAI_PRICES_RELEASED.get(installed)
    if released is not None:
        return PriceData("genai-prices", installed, released, f"genai-prices {installed}, released {released}")
    newest_version, newest = max(GENAI_PRICES_RELEASED.items(), key=lambda item: (item[1], _key(item[0])))
    if _key(installed) > _key(newest_version):
        return PriceData(
            "genai-prices",
            installed,
            newest,
            f"genai-prices {installed}, newer than this aimon-otel knows: released after {newest}",
        )
    return PriceData(
        "genai-prices", installed, None, f"genai-prices {installed}: release date unknown (supported: >=0.2.3)"
    )


def override_data(overrides: Overrides) -> PriceData | None:
    """The date of an override file's own prices; None when it has none (aliases only point at the table)."""
    if not (overrides.models or overrides.multipliers or overrides.images):
        return None
    if overrides.checked is None:
        return PriceData("override", overrides.source, None, f"{overrides.source}: no 'checked:' date")
    return PriceData(
        "override", overrides.source, overrides.checked, f"{overrides.source}: checked {overrides.checked}"
    )


def price_data(engine: PricingEngine) -> list[PriceData]:
    """The dates of every price source ``engine`` reads: the table, and the override file if it has prices."""
    fetched = engine.catalog.fetched
    if fetched is not None:  # AIMON_PRICES_UPDATE: the data fetched last is as fresh as its fetch
        when, source = fetched
        found = [PriceData("genai-prices", f"fetched from {source}", when.date(), f"fetched {when:%Y-%m-%d %H:%M} UTC")]
    else:
        found = [catalog_data()]
    override = override_data(engine.overrides)
    if override is not None:
        found.append(override)
    return found


def price_data_readings(engine: PricingEngine) -> Callable[[], Iterable[Observation]]:
    """The gauge's readings, worked out again only when fetched prices land (``AIMON_PRICES_UPDATE``)."""
    cached: list[Any] = [object(), []]

    def readings() -> Iterable[Observation]:
        fetched = engine.catalog.fetched
        if cached[0] is not fetched:
            cached[1] = [
                Observation(
                    entry.timestamp, {semconv.PRICING_SOURCE: entry.source, semconv.PRICING_VERSION: entry.name}
                )
                for entry in price_data(engine)
                if entry.timestamp is not None
            ]
            cached[0] = fetched
        result: list[Observation] = cached[1]
        return result

    return readings


def stale_warnings(data: list[PriceData], today: date, after_days: int = STALE_AFTER_DAYS) -> list[str]:
    """What ``aimon-otel pricing check`` warns about: old prices, and prices of unknown age."""
    warnings = []
    for entry in data:
        age = entry.age_days(today)
        if age is None and entry.source == "override":
            warnings.append(
                f"{entry.name}: its prices have no 'checked:' date, so their age is unknown; add "
                f"'checked: {today.isoformat()}' at the top level once you have compared them with the provider's"
            )
        elif age is None:
            warnings.append(f"{entry.basis}; upgrade aimon-otel to know its age")
        elif age > after_days:
            fix = (
                "upgrade it (pip install -U genai-prices)"
                if entry.source == "genai-prices"
                else "compare them with the provider's price page and update 'checked:'"
            )
            warnings.append(f"prices are {age} days old ({entry.basis}), over {after_days} days: {fix}")
    return warnings


def _key(release: str) -> Version:
    try:
        return Version(release)
    except InvalidVersion:
        return Version("0")
