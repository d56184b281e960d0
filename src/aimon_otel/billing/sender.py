"""The billing sink: every ended call goes on a queue (all the call's thread does), and a sender thread
turns calls into usage events, keeps them in the spool and sends them, oldest first, in batches.

Ordering of the guarantees: an event is in the spool (on disk) before it is sent, and leaves it only when
the billing system has it (sent, or answered as a duplicate) or refused it for good; a failed batch is
sent again after an exponential, jittered pause (or the ``Retry-After`` asked for). The call ids make a
resend harmless: the billing system keeps one event per id. A fault in here is logged, never raised.
"""

from __future__ import annotations

import itertools
import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from aimon_otel import semconv
from aimon_otel.billing.delivery import Destination
from aimon_otel.billing.events import CustomerOf, Unit, UsageEvent, usage_event
from aimon_otel.billing.spool import Spool
from aimon_otel.faults import report_fault
from aimon_otel.instrumentation.invocation import Invocation
from aimon_otel.pricing import CostResult

logger = logging.getLogger("aimon_otel.billing")
OUTCOME = "aimon.billing.outcome"
_STOP = object()
LEASE = 30.0
"""Seconds a taken batch is this sender's: longer than a send with its timeouts, short enough that a crashed
sender's batch is sent by another soon after."""


class BillingSink:
    """A pipeline sink that hands usage to a billing system; ``close()`` sends what it can and stops."""

    def __init__(
        self,
        destination: Destination,
        spool: Spool,
        customer_of: CustomerOf,
        unit: Unit,
        margin: Decimal | Callable[[str | None], Decimal],
        meter: Meter | None = None,
        flush_interval: float = 1.0,
        first_pause: float = 1.0,
        longest_pause: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.destination = destination
        self.spool = spool
        self.customer_of = customer_of
        self.unit = unit
        self.margin_of: Callable[[str | None], Decimal] = margin if callable(margin) else (lambda tenant: margin)
        """The factor on a tenant's cost (its plan's, with margins per plan)."""
        self.flush_interval = flush_interval
        self.first_pause = first_pause
        self.longest_pause = longest_pause
        self.clock = clock
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._process = uuid.uuid4().hex[:16]
        self._calls = itertools.count()
        self._failures = 0
        self._paused_until = 0.0
        self._last_problem_logged = 0.0
        self._counts: dict[str, int] = {}
        self._counter = (
            meter.create_counter("aimon.billing.events", unit="{event}", description="Usage events by outcome")
            if meter is not None
            else None
        )
        if meter is not None:
            meter.create_observable_gauge(
                "aimon.billing.spool.size",
                callbacks=[self._spool_size],
                unit="{event}",
                description="Usage events waiting in the spool for the billing system",
            )
        self._thread = threading.Thread(target=self._run, name="aimon-otel billing", daemon=True)
        self._thread.start()

    # -- the call's thread ------------------------------------------------------------------------

    def __call__(self, invocation: Invocation, cost: CostResult, attribution: dict[str, str]) -> None:
        call_id = invocation.call_id or f"{self._process}-{next(self._calls)}"  # the ledger's id, when set
        self._queue.put((call_id, self.clock(), invocation, cost, attribution))

    # -- the sender thread ------------------------------------------------------------------------

    def counts(self) -> Mapping[str, int]:
        """Events by outcome since start (``sent``, ``duplicate``, ``retried``, ``rejected``, ``dropped``,
        ``unmapped``, ``unpriced``, ``no_usage``)."""
        return dict(self._counts)

    def _count(self, outcome: str, amount: int = 1) -> None:
        if amount <= 0:
            return
        self._counts[outcome] = self._counts.get(outcome, 0) + amount
        if self._counter is not None:
            self._counter.add(amount, {OUTCOME: outcome})

    def _spool_size(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(len(self.spool), {"aimon.billing.destination": self.destination.name})]

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                stopping = self._collect()
                if self.clock() >= self._paused_until or stopping:
                    self._send_waiting()
            except Exception as fault:  # never let the thread die: what is spooled is sent later
                report_fault("billing sender", fault)
                time.sleep(min(self.flush_interval, 1.0))

    def _collect(self) -> bool:
        """Wait for calls (up to the pause left, when there is one), gather what came within the flush
        interval, and spool their events. True when asked to stop."""
        waiting = len(self.spool) > 0
        timeout = max(0.0, self._paused_until - self.clock()) if waiting else None
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            return False
        items = [first]
        deadline = time.monotonic() + self.flush_interval
        while items[-1] is not _STOP and len(items) < self.destination.max_batch * 10:
            left = deadline - time.monotonic()
            try:
                items.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        stopping = items[-1] is _STOP
        self._spool([item for item in items if item is not _STOP])
        return stopping

    def _spool(self, calls: list[tuple[str, float, Invocation, CostResult, dict[str, str]]]) -> None:
        rows = []
        for call_id, ended_at, invocation, cost, attribution in calls:
            margin = self.margin_of(attribution.get(semconv.TENANT_ID))
            made = usage_event(call_id, ended_at, invocation, cost, attribution, self.customer_of, self.unit, margin)
            if isinstance(made, str):
                self._count(made)
            else:
                rows.append((made.id, made.to_json()))
        dropped = self.spool.put(rows)
        if dropped:
            self._count("dropped", dropped)
            logger.error(
                "aimon-otel: the billing spool is full (%d events): dropped the %d oldest, never billed",
                self.spool.max_events,
                dropped,
            )

    def _send_waiting(self) -> None:
        """Send the spool's events, oldest first, until it is empty or a batch must wait."""
        while True:
            waiting = self.spool.take(self.destination.max_batch, LEASE)
            if not waiting:
                if len(self.spool):  # all held by other processes' senders: look again in a moment
                    self._paused_until = self.clock() + max(self.flush_interval, 0.5)
                return
            events = [UsageEvent.from_json(row.body) for row in waiting]
            delivery = self.destination.send(events)
            received = set(delivery.sent) | set(delivery.duplicates)
            self.spool.remove(delivery.done(), [asdict(e) for e in events if e.id in received])
            self._count("sent", len(delivery.sent))
            self._count("duplicate", len(delivery.duplicates))
            self._count("rejected", len(delivery.rejected))
            for event_id, reason in delivery.rejected.items():
                logger.error(
                    "aimon-otel: %s refused usage event %s for good: %s", self.destination.name, event_id, reason
                )
            if delivery.retry:
                self.spool.release(delivery.retry)
                self._count("retried", len(delivery.retry))
                self._pause(delivery.problem or "the billing system did not take the batch", delivery.retry_after)
                return
            self._failures = 0

    def _pause(self, problem: str, retry_after: float | None) -> None:
        self._failures += 1
        longest = min(self.longest_pause, self.first_pause * 2 ** min(self._failures - 1, 30))
        pause = max(retry_after or 0.0, longest * random.uniform(0.5, 1.0))
        self._paused_until = self.clock() + pause
        now = time.monotonic()
        if self._failures == 1 or now - self._last_problem_logged > 300:
            self._last_problem_logged = now
            logger.warning(
                "aimon-otel: %s; %d usage events wait in the spool (%s), next try in %.1f s",
                problem,
                len(self.spool),
                self.spool.path,
                pause,
            )

    def close(self, timeout: float = 5.0) -> None:
        """Spool what is queued, try once to send it, stop the thread; the rest is sent at the next start."""
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.spool.close()
