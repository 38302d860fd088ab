"""Stream objects returned by ``stream_async`` and ``stream``: iterators that are also context
managers and release the upstream connection when closed or abandoned."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any

from anyio.from_thread import BlockingPortal

from ._router import CallInfo
from ._types import ChatCompletionChunk

__all__ = ["AsyncChatStream", "ChatStream"]


class AsyncChatStream:
    """``async for chunk in factory.stream_async(...)``; ``async with`` closes it early."""

    def __init__(self, iterator: AsyncIterator[ChatCompletionChunk], info: CallInfo) -> None:
        self._iterator = iterator
        self.info = info

    @property
    def deployment(self) -> str | None:
        """The deployment that answered, once the stream has committed to one."""
        return self.info.deployment.name if self.info.deployment else None

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        return await self._iterator.__anext__()

    async def aclose(self) -> None:
        aclose: Callable[[], Any] | None = getattr(self._iterator, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class ChatStream:
    """The synchronous stream: each chunk is fetched on the factory's event loop thread."""

    def __init__(self, portal: BlockingPortal, stream: AsyncChatStream) -> None:
        self._portal = portal
        self._stream = stream
        self._closed = False

    @property
    def deployment(self) -> str | None:
        return self._stream.deployment

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self

    def __next__(self) -> ChatCompletionChunk:
        if self._closed:
            raise StopIteration
        try:
            return self._portal.call(self._stream.__anext__)
        except StopAsyncIteration:
            self._closed = True
            raise StopIteration from None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._portal.call(self._stream.aclose)

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if not self._closed:
            try:
                self.close()
            except Exception:  # the portal may already be gone at interpreter exit
                pass
