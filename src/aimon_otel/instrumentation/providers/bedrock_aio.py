"""Bedrock Runtime through aiobotocore (and aioboto3, built on it): the same four operations, awaited.

The responses are read as the sync ones are (:mod:`aimon_otel.instrumentation.providers.bedrock`); what differs is
I/O. Event streams are async-iterable, and an ``invoke_model`` body must be awaited: it is read once
before the response is recorded, and the app gets a proxy of its own body that serves those bytes
through the SDK's own iteration methods, so ``read``, ``iter_chunks``, ``iter_lines``, ``async for``
and ``async with`` behave as on the body the app would have had.
"""

from __future__ import annotations

import io
from types import TracebackType
from typing import Any

import wrapt

from aimon_otel.instrumentation.providers.bedrock import (
    BedrockEndpoint,
    Converse,
    ConverseStream,
    InvokeModel,
    InvokeModelStream,
)


class ReplayedBody(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """An async ``StreamingBody`` whose bytes were read by us: reads come from memory, in the same shape.

    Only ``read``/``readinto``/``tell`` are ours; the iteration helpers are the SDK's own, called on this
    proxy so they read through it. A read that failed for us fails for the app on its first read.
    """

    def __init__(self, wrapped: Any, data: bytes, error: BaseException | None = None) -> None:
        super().__init__(wrapped)
        self._self_data = data
        self._self_buffer = io.BytesIO(data)
        self._self_error = error

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        """The SDK body's class (aiobotocore 2.x's body is itself a proxy, whose ``__class__`` is aiohttp's)."""
        return type(self.__wrapped__)

    @property
    def replayed_bytes(self) -> bytes:
        return self._self_data

    async def read(self, amt: int | None = None) -> bytes:
        if self._self_error is not None:
            raise self._self_error
        return self._self_buffer.read(-1 if amt is None or amt < 0 else amt)

    async def readinto(self, buffer: bytearray) -> int:
        chunk = await self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def readable(self) -> bool:
        return self._self_buffer.tell() < len(self._self_data)

    def tell(self) -> int:
        return self._self_buffer.tell()

    def iter_chunks(self, *args: Any, **kwargs: Any) -> Any:
        return type(self.__wrapped__).iter_chunks(self, *args, **kwargs)

    def iter_lines(self, *args: Any, **kwargs: Any) -> Any:
        return type(self.__wrapped__).iter_lines(self, *args, **kwargs)

    async def readlines(self) -> Any:
        return await type(self.__wrapped__).readlines(self)

    def __aiter__(self) -> Any:
        return type(self.__wrapped__).__aiter__(self)

    async def __anext__(self) -> Any:
        return await type(self.__wrapped__).__anext__(self)

    async def __aenter__(self) -> Any:
        return await type(self.__wrapped__).__aenter__(self)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await type(self.__wrapped__).__aexit__(self, exc_type, exc, tb)


class AioConverse(Converse):
    pass


class AioConverseStream(ConverseStream):
    stream_async = True


class AioInvokeModel(InvokeModel):
    reads_body_async = True

    async def read_body_async(self, result: Any) -> None:
        raw = result.get("body") if isinstance(result, dict) else None
        if raw is None or not hasattr(raw, "read"):
            return
        try:
            data = await raw.read()
        except Exception as exc:  # the app's own read would have failed: it still does, with this error
            result["body"] = ReplayedBody(raw, b"", exc)
            return
        result["body"] = ReplayedBody(raw, data)

    def take_body(self, response: dict[str, Any]) -> bytes | None:
        body = response.get("body")
        return body.replayed_bytes if isinstance(body, ReplayedBody) else None


class AioInvokeModelStream(InvokeModelStream):
    stream_async = True


OPERATIONS: dict[str, type[BedrockEndpoint]] = {
    "converse": AioConverse,
    "converse_stream": AioConverseStream,
    "invoke_model": AioInvokeModel,
    "invoke_model_with_response_stream": AioInvokeModelStream,
}
