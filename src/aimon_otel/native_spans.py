"""One span per call when the SDK traces itself (anthropic 2.x's own ``CLIENT`` span).

We then start no span of our own. While our wrapper calls through, ``current_link`` holds a
:class:`NativeLink`; the span processor, seeing the SDK's span start inside that call, adopts
it. The SDK ends its span before we have read the whole response (always for a non-stream
call, sometimes for a stream), so the processor holds it back until our call ends and hands
the exporter a copy with our usage, cost and tenant attributes added. A span whose call has
already ended is passed on at once. Metrics are recorded by the call as always.
"""

from __future__ import annotations

import contextvars
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan
from opentelemetry.util.types import AttributeValue

current_link: contextvars.ContextVar[NativeLink | None] = contextvars.ContextVar("aimon_native_link", default=None)
# By span id: the SDK hands processors a fresh ReadableSpan at the end, not the object it started.
# A link whose call ends after its span is forgotten then; one whose span ends last stays until
# MAX_LINKS newer ones push it out (a few hundred bytes each).
_links: OrderedDict[int, NativeLink] = OrderedDict()
_links_lock = threading.Lock()
MAX_LINKS = 10_000

Forward = Callable[[ReadableSpan, dict[str, AttributeValue]], None]


class NativeLink:
    """Joins our call to the SDK's span; whichever ends second sends the enriched span on."""

    __slots__ = ("_lock", "attributes", "pending", "span")

    def __init__(self) -> None:
        self.span: Any = None
        self.attributes: dict[str, AttributeValue] | None = None
        self.pending: list[tuple[Forward, ReadableSpan]] = []
        self._lock = threading.Lock()

    def adopt(self, span: Any) -> None:
        if self.span is None:
            # Keep only its identity (for exemplars), not the live span and its attributes.
            self.span = NonRecordingSpan(span.get_span_context())
            with _links_lock:
                _links[span.get_span_context().span_id] = self
                if len(_links) > MAX_LINKS:  # calls that never ended; let their spans go unenriched
                    _links.popitem(last=False)

    def deliver(self, forward: Forward, span: ReadableSpan) -> None:
        with self._lock:
            attributes = self.attributes
            if attributes is None:
                self.pending.append((forward, span))
                return
        forward(span, attributes)

    def complete(self, attributes: dict[str, AttributeValue]) -> None:
        with self._lock:
            self.attributes = attributes
            pending, self.pending = self.pending, []
        for forward, span in pending:
            forward(span, attributes)
        if pending:  # the span has ended and every processor has seen it: nothing will ask again
            forget(self)


def link_of(span: ReadableSpan) -> NativeLink | None:
    context = span.context
    return _links.get(context.span_id) if context is not None else None


def forget(link: NativeLink) -> None:
    if link.span is not None:
        with _links_lock:
            _links.pop(link.span.get_span_context().span_id, None)


class AttributeSink:
    """Stands in for our span when the SDK's own span is the call's span: keeps what we would set."""

    __slots__ = ("attributes", "link")

    def __init__(self, link: NativeLink, attributes: dict[str, AttributeValue]) -> None:
        self.link = link
        self.attributes = dict(attributes)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self.attributes[key] = value

    def set_attributes(self, attributes: dict[str, AttributeValue]) -> None:
        self.attributes.update(attributes)

    def set_status(self, *args: Any, **kwargs: Any) -> None:
        """The SDK sets its span's status itself."""

    def add_event(self, *args: Any, **kwargs: Any) -> None:
        """The SDK records its own exception events."""

    def end(self) -> None:
        self.link.complete(self.attributes)
