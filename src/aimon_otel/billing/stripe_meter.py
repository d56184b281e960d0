"""Stripe billing meter events, through the official ``stripe`` SDK (``POST /v1/billing/meter_events``).

One event per request (the v1 API has no batch): ``event_name`` the meter's, ``payload`` the customer
(``stripe_customer_id``) and the value (micro-USD as a whole number, or tokens), ``identifier`` the
call's id, which Stripe keeps unique for at least 24 hours: a resent event is answered 400 naming
``identifier``, and counts as billed. The SDK is imported when billing is set up (``instrument()``),
never first in the sender thread: openai 3.x looks ``httpx`` up in ``sys.modules`` mid-call, and a
half-done import of ``stripe`` in another thread can make that call fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aimon_otel.billing.delivery import Delivery
from aimon_otel.billing.events import UsageEvent

PUBLIC_API = "https://api.stripe.com"


class StripeMeterDestination:
    name = "stripe"
    max_batch = 100
    """Events taken from the spool per round; each is one request."""

    def __init__(self, api_url: str, api_key: str, event_name: str, timeout: float = 10.0) -> None:
        import stripe  # here, at set-up: see the module's docstring

        self._stripe = stripe
        http_client = stripe.RequestsClient(timeout=timeout)
        self._client = stripe.StripeClient(
            api_key, base_addresses={"api": api_url.rstrip("/")}, max_network_retries=0, http_client=http_client
        )
        services = getattr(self._client, "v1", self._client)
        self._meter_events = services.billing.meter_events
        self.event_name = event_name

    def params(self, event: UsageEvent) -> dict[str, Any]:
        value = event.billed_micro_usd if event.unit == "usd" else int(event.billed)
        return {
            "event_name": self.event_name,
            "payload": {"stripe_customer_id": event.customer, "value": str(value)},
            "identifier": event.id,
            "timestamp": int(event.timestamp),
        }

    def send(self, events: Sequence[UsageEvent]) -> Delivery:
        stripe = self._stripe
        delivery = Delivery()
        for index, event in enumerate(events):
            try:
                self._meter_events.create(params=self.params(event))  # type: ignore[arg-type]
            except stripe.InvalidRequestError as error:
                if _names_identifier(error):
                    delivery.duplicates.append(event.id)
                else:  # no such customer, a bad value...: Stripe will never take it
                    delivery.rejected[event.id] = str(error.user_message or error)
                continue
            except (
                Exception
            ) as error:  # down, rate limited, a bad key, an answer the SDK could not read: the rest waits
                delivery.retry.extend(e.id for e in events[index:])
                message = getattr(error, "user_message", None) or error
                delivery.problem = f"Stripe: {type(error).__name__}: {message}"
                delivery.retry_after = _retry_after(error)
                return delivery
            delivery.sent.append(event.id)
        return delivery


def _names_identifier(error: Any) -> bool:
    text = f"{getattr(error, 'param', '')} {getattr(error, 'user_message', '')} {error}".lower()
    return getattr(error, "param", None) == "identifier" or ("identifier" in text and "already" in text)


def _retry_after(error: Any) -> float | None:
    headers = getattr(error, "headers", None) or {}
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError, AttributeError):
        return None
