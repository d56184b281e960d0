"""Provider balances: what is left to spend at OpenRouter and DeepSeek, read by a background poller.

A balance that runs out makes every call fail at once; read it every few minutes (``AIMON_PROVIDER_BALANCES``)
and the ``GenAIProviderBalanceLow`` alert warns first. The readings are the gauge ``aimon.provider.balance``
(``gen_ai.provider.name``, ``aimon.balance.kind``, ``currency``, and ``aimon.api_key.id`` when a key salt is
set). The APIs, as their references document them:

* OpenRouter ``GET /api/v1/credits``: ``data.total_credits`` - ``data.total_usage`` (kind ``account``), and
  ``GET /api/v1/key``: ``data.limit_remaining`` when the key has a limit (kind ``key_limit``); USD.
* DeepSeek ``GET /user/balance``: ``balance_infos[].total_balance`` per currency (kind ``account``).

A 401 is logged once (the key is wrong: nothing to retry soon); timeouts and 5xx back off; nothing
here ever reaches the app.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from aimon_otel import semconv
from aimon_otel.faults import report_fault

logger = logging.getLogger("aimon_otel.billing.balances")
PROVIDERS = ("openrouter", "deepseek")
DEFAULT_URLS = {"openrouter": "https://openrouter.ai", "deepseek": "https://api.deepseek.com"}
KEY_VARIABLES = {"openrouter": "OPENROUTER_API_KEY", "deepseek": "DEEPSEEK_API_KEY"}
URL_VARIABLES = {"openrouter": "AIMON_BALANCE_URL_OPENROUTER", "deepseek": "AIMON_BALANCE_URL_DEEPSEEK"}
PROVIDER_NAMES = {"openrouter": "openrouter", "deepseek": "deepseek"}
KIND = "aimon.balance.kind"
CURRENCY = "currency"


@dataclass(frozen=True)
class Reading:
    provider: str
    kind: str
    """``account`` (what the account has left) or ``key_limit`` (what this key may still spend)."""
    currency: str
    amount: Decimal


class BalanceRefusedError(Exception):
    """A 401/403: the key is wrong or lacks the right; retrying soon will not help."""


def _get(url: str, key: str, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        with error:
            if error.code in (401, 403):
                raise BalanceRefusedError(f"{url} answered {error.code}") from None
            raise


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        found = Decimal(str(value))
    except InvalidOperation:
        return None
    return found if found.is_finite() else None


def read_openrouter(base: str, key: str, timeout: float) -> list[Reading]:
    readings: list[Reading] = []
    credits = _get(f"{base}/api/v1/credits", key, timeout).get("data") or {}
    total, used = _decimal(credits.get("total_credits")), _decimal(credits.get("total_usage"))
    if total is not None and used is not None:
        readings.append(Reading("openrouter", "account", "USD", total - used))
    about_key = _get(f"{base}/api/v1/key", key, timeout).get("data") or {}
    remaining = _decimal(about_key.get("limit_remaining"))
    if remaining is not None:  # null: the key has no limit of its own
        readings.append(Reading("openrouter", "key_limit", "USD", remaining))
    return readings


def read_deepseek(base: str, key: str, timeout: float) -> list[Reading]:
    answer = _get(f"{base}/user/balance", key, timeout)
    readings = []
    for info in answer.get("balance_infos") or []:
        amount = _decimal(info.get("total_balance"))
        if amount is not None and isinstance(info.get("currency"), str):
            readings.append(Reading("deepseek", "account", info["currency"], amount))
    return readings


READERS: dict[str, Callable[[str, str, float], list[Reading]]] = {
    "openrouter": read_openrouter,
    "deepseek": read_deepseek,
}


class BalancePoller:
    """Reads each configured provider's balance every ``interval`` seconds on a daemon thread."""

    def __init__(
        self,
        providers: tuple[str, ...],
        interval: float,
        meter: Meter,
        environ: Mapping[str, str] | None = None,
        fingerprint: Callable[[str], str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        env = os.environ if environ is None else environ
        self.interval = interval
        self.timeout = timeout
        self._targets: list[tuple[str, str, str, str | None]] = []
        for provider in providers:
            key = env.get(KEY_VARIABLES[provider], "").strip()
            if not key:
                logger.warning("aimon-otel: %s balance not read: %s is not set", provider, KEY_VARIABLES[provider])
                continue
            base = (env.get(URL_VARIABLES[provider], "").strip() or DEFAULT_URLS[provider]).rstrip("/")
            self._targets.append((provider, base, key, fingerprint(key) if fingerprint else None))
        self._readings: dict[tuple[str, str | None], list[Reading]] = {}
        self._failures: dict[str, int] = {}
        self._refused: set[str] = set()
        self._stop = threading.Event()
        self.rounds = 0
        """Polls completed (for tests: wait until one has run)."""
        self._polled = threading.Condition()
        meter.create_observable_gauge(
            "aimon.provider.balance",
            callbacks=[self._observe],
            unit="{currency}",
            description="What is left to spend at the provider (account credit, or the API key's limit)",
        )
        self._thread = threading.Thread(target=self._run, name="aimon-otel balances", daemon=True)
        if self._targets:
            self._thread.start()

    def readings(self) -> list[Reading]:
        return [reading for found in list(self._readings.values()) for reading in found]

    def _observe(self, options: CallbackOptions) -> list[Observation]:
        observations = []
        for (_provider, key_id), found in list(self._readings.items()):
            for reading in found:
                attributes: dict[str, str] = {
                    semconv.PROVIDER_NAME: PROVIDER_NAMES[reading.provider],
                    KIND: reading.kind,
                    CURRENCY: reading.currency,
                }
                if key_id is not None:
                    attributes[semconv.API_KEY_ID] = key_id
                observations.append(Observation(float(reading.amount), attributes))
        return observations

    def poll_once(self) -> float:
        """Read every provider now; the seconds until the next round (longer after failures)."""
        wait = self.interval
        for provider, base, key, key_id in self._targets:
            if provider in self._refused:
                continue
            try:
                self._readings[(provider, key_id)] = READERS[provider](base, key, self.timeout)
                self._failures[provider] = 0
            except BalanceRefusedError as refused:
                self._refused.add(provider)
                self._readings.pop((provider, key_id), None)
                logger.error(
                    "aimon-otel: the %s balance cannot be read (%s): check %s; not asked again until restart",
                    provider,
                    refused,
                    KEY_VARIABLES[provider],
                )
            except Exception as failure:  # timeouts, 5xx, a changed answer: back off, keep the last reading
                failures = self._failures.get(provider, 0) + 1
                self._failures[provider] = failures
                wait = min(wait * 2 ** min(failures, 4), max(self.interval, 3600.0))
                if failures == 1:
                    logger.warning("aimon-otel: reading the %s balance failed: %s", provider, failure)
        with self._polled:
            self.rounds += 1
            self._polled.notify_all()
        return wait

    def wait_for_round(self, rounds: int, timeout: float) -> bool:
        with self._polled:
            return self._polled.wait_for(lambda: self.rounds >= rounds, timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.poll_once()
            except Exception as fault:
                report_fault("provider balances", fault)
                wait = self.interval
            self._stop.wait(wait)

    def close(self) -> None:
        self._stop.set()
