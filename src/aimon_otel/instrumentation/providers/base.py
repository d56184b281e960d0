"""What every provider endpoint has in common: a plan per request, and how results are told apart.

An endpoint describes one API of one SDK (chat completions, messages...): how to read a request
into an :class:`~aimon_otel.instrumentation.invocation.Invocation` (``plan``), a response (``record_response``) and a
stream (``stream_reader``). It never touches spans or metrics; :mod:`aimon_otel.instrumentation.calls` and the
pipeline do that, the same for every endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from aimon_otel.config import Settings
from aimon_otel.instrumentation.invocation import Invocation


@dataclass(slots=True)
class Plan:
    """How a request will be sent: what we read from it, and the keyword arguments to send."""

    invocation: Invocation
    kwargs: dict[str, Any]

    def without_additions(self) -> Plan | None:
        """The plan to retry with once if the endpoint rejects what we added; None if nothing was."""
        return None


class StreamReader(Protocol):
    """Reads one stream's items into its invocation; knows which items the caller must not see."""

    def on_item(self, item: Any) -> None:
        """Take note of one item."""

    def hides(self, item: Any) -> bool:
        """True for an item only we asked for, which the caller must not see.

        Kept apart from ``on_item`` so a fault while reading an item never changes what the caller sees.
        """

    def finish(self, invocation: Invocation) -> None:
        """Report what the stream told us."""


class _NoModel:
    """Stands in for pydantic's BaseModel if it cannot be imported: nothing is an instance of it."""


def sdk_model_type() -> type:
    """The base class of the SDKs' response objects (pydantic's), to tell them from raw responses cheaply.

    Called when an endpoint is built, after the SDK (and so pydantic) is imported: importing
    ``aimon_otel`` itself never pays for pydantic.
    """
    try:
        from pydantic import BaseModel
    except ImportError:  # pragma: no cover - both SDKs depend on pydantic
        return _NoModel
    return BaseModel


class Endpoint:
    """One API of one SDK. Subclasses read requests, responses and streams; this holds what they share."""

    def __init__(self, settings: Settings, stream_types: tuple[type, ...]) -> None:
        self.settings = settings
        self.stream_types = stream_types
        self.model_type = sdk_model_type()

    def plan(self, instance: Any, kwargs: dict[str, Any]) -> Plan:
        """Read the request; may add options (whose effect the caller never sees)."""
        raise NotImplementedError

    def record_response(self, invocation: Invocation, response: Any) -> None:
        """Read a parsed (non-stream) response into the invocation."""

    def stream_reader(self, invocation: Invocation, plan: Plan) -> StreamReader:
        raise NotImplementedError

    def should_fall_back(self, plan: Plan, exc: BaseException) -> bool:
        """True when ``exc`` means the endpoint rejected what ``plan`` added."""
        return False

    def fell_back(self, plan: Plan) -> None:
        """The call succeeded without what ``plan`` added: do not add it there again."""

    def is_stream(self, result: Any) -> bool:
        return isinstance(result, self.stream_types)

    stream_async: bool | None = None
    """Whether the API's streams are async; None: told by the stream itself (LiteLLM's serve both ways)."""

    iterable_stream = False
    """The stream is iterable but not an iterator (botocore's ``EventStream``, aiobotocore's)."""

    reads_body_async = False
    """An async client's body must be read (``read_body_async``) before the response can be recorded."""

    async def read_body_async(self, result: Any) -> None:
        """Read what ``record_response`` needs from an async body, leaving the app an equal one."""

    def stream_of(self, result: Any) -> Any:
        """The stream in a result ``is_stream`` accepted: the result itself, or a part of it (boto3's dicts)."""
        return result

    def with_stream(self, result: Any, proxy: Any) -> Any:
        """What the caller gets: the proxy, or the result with its stream swapped for the proxy."""
        return proxy

    def is_raw_response(self, result: Any) -> bool:
        """A ``with_raw_response`` / ``with_streaming_response`` result rather than a parsed model.

        The parsed model (the common case) is ruled out first: ``hasattr`` on it goes through
        pydantic's slow ``__getattr__``.
        """
        if isinstance(result, self.model_type):
            return False
        return hasattr(result, "http_response") and hasattr(result, "parse")


class Target(NamedTuple):
    """One SDK method to wrap: ``module``, ``Class.method``, the endpoint that reads it, async or not."""

    module: str
    method: str
    endpoint: type[Endpoint]
    is_async: bool
