"""One span per call when the SDK traces itself (anthropic 2.x's own ``CLIENT`` span).

We then start no span of our own. While our wrapper calls through, ``current_link`` holds a
:class:`NativeLink`; the span processor, seeing the SDK's span start inside that call, adopts
it into its own :class:`LinkRegistry`. The SDK ends its span before we have read the whole
response (always for a non-stream call, sometimes for a stream), so the processor holds it
back until our call ends and hands the exporter a copy with our usage, cost and tenant
attributes added. A span whose call has already ended is passed on at once.

Where both set an attribute, ours wins: the SDK reads the top-level ``usage`` of one response,
which leaves out the passes of server-side compaction (``usage.iterations``) and, in a stream,
what only the last events carry; we sum every pass, and our figures are the ones the metrics,
the price and the budgets use, so the span must agree with them. Attributes the SDK sets under
its own names for one of our figures (:func:`restated`) are rewritten with ours too.

Another instrumentation of the same SDK (the official google-genai one) starts its span *before*
our wrapper runs, around the one API call we follow: our call then joins that enclosing span
(:func:`join_enclosing`) instead of starting a second one, and our figures win over its own
(it counts no tool-use prompt tokens, names the provider ``gemini``).
"""

from __future__ import annotations

import contextvars
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan
from opentelemetry.util.types import AttributeValue

from aimon_otel.instrumentation.usage import Usage

# The call under way in this context whose SDK traces itself (a key, like every ContextVar: no state).
current_link: contextvars.ContextVar[NativeLink | None] = contextvars.ContextVar("aimon_native_link", default=None)

Forward = Callable[[ReadableSpan, dict[str, AttributeValue], dict[str, AttributeValue]], None]
"""Sends a span on with our attributes and our restated figures (see :func:`merged`)."""

ENCLOSING_SCOPES = frozenset({"opentelemetry.instrumentation.google_genai"})
"""Instrumentations whose span encloses exactly the API call our wrapper follows."""


def restated(usage: Usage | None) -> dict[str, AttributeValue]:
    """Our figures under the names the anthropic SDK sets for them (its top-level usage only).

    They replace the SDK's value only where its span has the attribute (:func:`merged`)."""
    if usage is None:
        return {}
    pairs = (
        ("gen_ai.usage.cache_write.input_tokens", usage.cache_creation_input_tokens),
        ("anthropic.usage.cache_creation.ephemeral_5m_input_tokens", usage.cache_creation_5m_input_tokens),
        ("anthropic.usage.cache_creation.ephemeral_1h_input_tokens", usage.cache_creation_1h_input_tokens),
    )
    return {name: value for name, value in pairs if value is not None}


class NativeLink:
    """Joins our call to the SDK's span; whichever ends second sends the enriched span on."""

    __slots__ = ("_lock", "attributes", "pending", "registries", "restated", "span")

    def __init__(self) -> None:
        self.span: Any = None
        self.attributes: dict[str, AttributeValue] | None = None
        self.restated: dict[str, AttributeValue] = {}
        self.pending: list[tuple[Forward, ReadableSpan]] = []
        self.registries: list[LinkRegistry] = []
        self._lock = threading.Lock()

    def adopt(self, span: Any, registry: LinkRegistry) -> None:
        with self._lock:
            if self.span is None:
                # Keep only its identity (for exemplars), not the live span and its attributes.
                self.span = NonRecordingSpan(span.get_span_context())
            if registry not in self.registries:
                self.registries.append(registry)
        registry.add(span.get_span_context().span_id, self)

    def deliver(self, forward: Forward, span: ReadableSpan) -> None:
        with self._lock:
            attributes = self.attributes
            if attributes is None:
                self.pending.append((forward, span))
                return
        forward(span, attributes, self.restated)

    def complete(self, attributes: dict[str, AttributeValue], restated: dict[str, AttributeValue]) -> None:
        with self._lock:
            self.restated = restated
            self.attributes = attributes
            pending, self.pending = self.pending, []
        for forward, span in pending:
            forward(span, attributes, restated)
        if pending and self.span is not None:  # the span has ended and every processor has seen it
            span_id = self.span.get_span_context().span_id
            for registry in self.registries:
                registry.forget(span_id)


class LinkRegistry:
    """One span processor's links, by span id (the SDK hands processors a fresh ReadableSpan at the end)."""

    MAX_LINKS = 10_000
    """Calls that never end keep their link until this many newer ones push it out (a few hundred bytes each)."""

    def __init__(self) -> None:
        self._links: OrderedDict[int, NativeLink] = OrderedDict()
        self.pending = self._links
        """The links waiting for their span, by span id: read without the lock (an empty dict is falsy) by the
        span processor on every span, so a span with no link pending costs no lookup."""
        self._lock = threading.Lock()

    def add(self, span_id: int, link: NativeLink) -> None:
        with self._lock:
            self._links[span_id] = link
            if len(self._links) > self.MAX_LINKS:
                self._links.popitem(last=False)

    def get(self, span: ReadableSpan) -> NativeLink | None:
        context = span.context
        return self._links.get(context.span_id) if context is not None else None

    def forget(self, span_id: int) -> None:
        with self._lock:
            self._links.pop(span_id, None)


enclosing = LinkRegistry()
"""Spans of other instrumentations our calls joined (every span processor of ours looks here too)."""


def join_enclosing(span: Any) -> NativeLink | None:
    """A link to ``span`` if another instrumentation started it around the call we follow; else None."""
    scope = getattr(span, "instrumentation_scope", None)
    if scope is None or scope.name not in ENCLOSING_SCOPES or not span.is_recording():
        return None
    link = NativeLink()
    link.adopt(span, enclosing)
    return link


def merged(
    theirs: Mapping[str, AttributeValue], ours: Mapping[str, AttributeValue], restated: Mapping[str, AttributeValue]
) -> dict[str, AttributeValue]:
    """The other span's attributes with ours over them, and its own names for our figures rewritten.

    A restated figure we do not have (no 1-hour cache write reported) leaves the SDK's value: we
    never invent one, and never add the SDK's names to a span that lacks them.
    """
    result = {**theirs, **ours}
    for name, value in restated.items():
        if name in theirs:
            result[name] = value
    return result
