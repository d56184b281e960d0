"""CloudEvents 1.0, structured JSON in batches (``application/cloudevents-batch+json``): what OpenMeter
and other metering services ingest.

``id`` is the call's id and ``source`` this service, the pair a receiver deduplicates on; ``subject``
is the customer; ``data`` the call's usage and amount. A batch is taken or not as a whole.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from aimon_otel.billing.delivery import Delivery, JsonPoster, is_retryable, retry_all
from aimon_otel.billing.events import UsageEvent

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"


class CloudEventsDestination:
    name = "cloudevents"
    max_batch = 500

    def __init__(self, url: str, api_key: str | None, event_type: str, source: str, timeout: float = 10.0) -> None:
        self.url = url
        self.poster = JsonPoster(url, timeout)
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.event_type = event_type
        self.source = source
        self.timeout = timeout

    def payload(self, event: UsageEvent) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": event.id,
            "source": self.source,
            "type": self.event_type,
            "subject": event.customer,
            "time": dt.datetime.fromtimestamp(event.timestamp, dt.UTC).isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": {
                "tenant": event.tenant,
                "provider": event.provider,
                "model": event.model,
                "input_tokens": event.input_tokens,
                "output_tokens": event.output_tokens,
                "cache_read_tokens": event.cache_read_tokens,
                "cache_write_tokens": event.cache_write_tokens,
                "cost_usd": event.cost_usd,
                "unit": event.unit,
                "billed": event.billed,
            },
        }

    def send(self, events: Sequence[UsageEvent]) -> Delivery:
        batch = [self.payload(event) for event in events]
        try:
            answer = self.poster.post(batch, self.headers, content_type=BATCH_CONTENT_TYPE)
        except OSError as error:
            return retry_all(events, f"the CloudEvents endpoint is unreachable: {error}")
        if 200 <= answer.status < 300:
            return Delivery(sent=[event.id for event in events])
        problem = f"the CloudEvents endpoint answered {answer.status}"
        if is_retryable(answer.status):
            return retry_all(events, problem, answer.retry_after)
        return retry_all(events, f"{problem}: {answer.body}", answer.retry_after)
