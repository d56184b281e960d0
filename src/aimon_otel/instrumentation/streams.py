"""Transparent stream proxies that end a call's span exactly once.

Every way a stream can end goes through ``_finish``: exhausted, ``close()``, the
(async) context manager, an exception mid-stream, or the proxy being collected
unfinished (``abandoned``; this is also how a ``break`` without ``close()`` ends).
The proxies are ``wrapt.ObjectProxy`` objects, so ``isinstance(stream, openai.Stream)``
and every attribute of the SDK's stream keep working.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

import wrapt

from aimon_otel import semconv
from aimon_otel.faults import report_fault

if TYPE_CHECKING:
    from aimon_otel.instrumentation.pipeline import Call
    from aimon_otel.instrumentation.providers.base import StreamReader


def _finish(call: Call, reader: StreamReader, outcome: str, exc: BaseException | None) -> None:
    try:
        invocation = call.invocation
        reader.finish(invocation)
        if exc is not None:
            invocation.raised(exc)
        invocation.stream_outcome = outcome
        call.end()
    except Exception as fault:  # never let telemetry break the stream
        report_fault("stream end", fault)


def _observe(call: Call, reader: StreamReader, item: Any) -> bool:
    """Take note of one item; True if the caller must not see it. A fault shows the item."""
    try:
        invocation = call.invocation
        if invocation.first_chunk_at is None:
            invocation.first_chunk()
        reader.on_item(item)
    except Exception as fault:
        report_fault("stream item", fault)
    try:
        return reader.hides(item)
    except Exception as fault:
        report_fault("stream item", fault)
        return False


class SyncStreamProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """Wraps a sync SDK stream (``openai.Stream``)."""

    def __init__(self, wrapped: Any, call: Call, reader: StreamReader) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_reader = reader
        self._self_done = False

    def _self_end(self, outcome: str, exc: BaseException | None = None) -> None:
        if not self._self_done:
            self._self_done = True
            _finish(self._self_call, self._self_reader, outcome, exc)

    def __iter__(self) -> SyncStreamProxy:
        return self

    def __next__(self) -> Any:
        while True:
            try:
                item = self.__wrapped__.__next__()
            except StopIteration:
                self._self_end(semconv.STREAM_COMPLETED)
                raise
            except BaseException as exc:
                self._self_end(semconv.STREAM_ERROR, exc)
                raise
            if not _observe(self._self_call, self._self_reader, item):
                return item

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_end(semconv.STREAM_CLOSED)

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_end(semconv.STREAM_CLOSED)

    def __del__(self) -> None:
        self._self_end(semconv.STREAM_ABANDONED)


class IterableStreamProxy(SyncStreamProxy):
    """Wraps a stream that is iterable but not an iterator (botocore's ``EventStream``): iterating it again
    goes on where the last loop stopped, as the stream itself does."""

    def __init__(self, wrapped: Any, call: Call, reader: StreamReader) -> None:
        super().__init__(wrapped, call, reader)
        self._self_items: Any = None

    def __next__(self) -> Any:
        items = self._self_items
        if items is None:
            items = self._self_items = iter(self.__wrapped__)
        while True:
            try:
                item = next(items)
            except StopIteration:
                self._self_end(semconv.STREAM_COMPLETED)
                raise
            except BaseException as exc:
                self._self_end(semconv.STREAM_ERROR, exc)
                raise
            if not _observe(self._self_call, self._self_reader, item):
                return item


class AsyncStreamProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """Wraps an async SDK stream (``openai.AsyncStream``)."""

    def __init__(self, wrapped: Any, call: Call, reader: StreamReader) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_reader = reader
        self._self_done = False

    def _self_end(self, outcome: str, exc: BaseException | None = None) -> None:
        if not self._self_done:
            self._self_done = True
            _finish(self._self_call, self._self_reader, outcome, exc)

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                item = await self.__wrapped__.__anext__()
            except StopAsyncIteration:
                self._self_end(semconv.STREAM_COMPLETED)
                raise
            except BaseException as exc:
                self._self_end(semconv.STREAM_ERROR, exc)
                raise
            if not _observe(self._self_call, self._self_reader, item):
                return item

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_end(semconv.STREAM_CLOSED)

    async def aclose(self) -> None:
        try:
            await self.__wrapped__.aclose()
        finally:
            self._self_end(semconv.STREAM_CLOSED)

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_end(semconv.STREAM_CLOSED)

    def __del__(self) -> None:
        self._self_end(semconv.STREAM_ABANDONED)


class AsyncIterableStreamProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """Wraps a stream that is async-iterable but not an async iterator (aiobotocore's ``AioEventStream``,
    whose ``close()`` is sync, as botocore's): iterating it again goes on where the last loop stopped."""

    def __init__(self, wrapped: Any, call: Call, reader: StreamReader) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_reader = reader
        self._self_done = False
        self._self_items: Any = None

    def _self_end(self, outcome: str, exc: BaseException | None = None) -> None:
        if not self._self_done:
            self._self_done = True
            _finish(self._self_call, self._self_reader, outcome, exc)

    def __aiter__(self) -> AsyncIterableStreamProxy:
        return self

    async def __anext__(self) -> Any:
        items = self._self_items
        if items is None:
            items = self._self_items = self.__wrapped__.__aiter__()
        while True:
            try:
                item = await items.__anext__()
            except StopAsyncIteration:
                self._self_end(semconv.STREAM_COMPLETED)
                raise
            except BaseException as exc:
                self._self_end(semconv.STREAM_ERROR, exc)
                raise
            if not _observe(self._self_call, self._self_reader, item):
                return item

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_end(semconv.STREAM_CLOSED)

    def __del__(self) -> None:
        self._self_end(semconv.STREAM_ABANDONED)
