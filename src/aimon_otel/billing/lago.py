"""Lago: ``POST /api/v1/events/batch`` (up to 100 events), as Lago's API reference documents it.

Lago checks a whole batch before it stores any of it: one bad event and the batch is answered 422,
``error_details`` keyed by each bad event's index. An event whose only error is
``transaction_id: value_already_exist`` was billed before (we resent a batch whose answer was lost);
one with another error is refused for good; every other event of that batch is sent again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aimon_otel.billing.delivery import Delivery, JsonPoster, is_retryable, retry_all
from aimon_otel.billing.events import UsageEvent

PUBLIC_API = "https://api.getlago.com"
ALREADY_BILLED = {"transaction_id": ["value_already_exist"]}


class LagoDestination:
    name = "lago"
    max_batch = 100

    def __init__(self, api_url: str, api_key: str, metric_code: str, timeout: float = 10.0) -> None:
        self.url = api_url.rstrip("/") + "/api/v1/events/batch"
        self.poster = JsonPoster(self.url, timeout)
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.metric_code = metric_code
        self.timeout = timeout

    def payload(self, event: UsageEvent) -> dict[str, Any]:
        return {
            "transaction_id": event.id,
            "external_subscription_id": event.customer,
            "code": self.metric_code,
            "timestamp": event.timestamp,
            "properties": {
                "provider": event.provider,
                "model": event.model,
                "input_tokens": event.input_tokens,
                "output_tokens": event.output_tokens,
                "cache_read_tokens": event.cache_read_tokens,
                "cache_write_tokens": event.cache_write_tokens,
                "cost_usd": event.cost_usd,
                "billed": event.billed,
                "unit": event.unit,
            },
        }

    def send(self, events: Sequence[UsageEvent]) -> Delivery:
        try:
            answer = self.poster.post({"events": [self.payload(e) for e in events]}, self.headers)
        except OSError as error:
            return retry_all(events, f"Lago unreachable: {error}")
        if 200 <= answer.status < 300:
            return Delivery(sent=[event.id for event in events])
        if (
            answer.status == 422
            and isinstance(answer.body, dict)
            and isinstance(answer.body.get("error_details"), dict)
        ):
            return _sorted_out(events, answer.body["error_details"])
        if is_retryable(answer.status):
            return retry_all(events, f"Lago answered {answer.status}", answer.retry_after)
        reason = f"Lago answered {answer.status}: {answer.body}"  # 401, 404...: the setup is wrong
        return retry_all(events, reason, answer.retry_after)


def _sorted_out(events: Sequence[UsageEvent], details: dict[str, Any]) -> Delivery:
    """A 422: which events were already billed, which are refused, which to send again."""
    delivery = Delivery(problem="Lago refused part of a batch; the rest is sent again")
    for index, event in enumerate(events):
        errors = details.get(str(index))
        if errors is None:
            delivery.retry.append(event.id)
        elif errors == ALREADY_BILLED:
            delivery.duplicates.append(event.id)
        else:
            delivery.rejected[event.id] = str(errors)
    return delivery
