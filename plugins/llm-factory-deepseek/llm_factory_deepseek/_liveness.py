"""The between-chunks limit, enforced on the bytes of a stream whatever the transport.

DeepSeek keeps a busy stream open with ``: keep-alive`` comments, for up to ten minutes before
inference starts. Those bytes prove the upstream is alive, so they reset the silence timer; they
are not content, so they never stop the router's first-token timer (the SSE decoder drops them).
httpx's read timeout does the same on a real socket, but a custom or mock transport may ignore it;
this wrapper makes ``chunk_timeout`` hold everywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx

__all__ = ["watch_silence"]


class _SilenceLimitedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, limit: float, request: httpx.Request) -> None:
        self._inner = inner
        self._limit = limit
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        iterator = self._inner.__aiter__()
        while True:
            try:
                with anyio.fail_after(self._limit):
                    part = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                # The same exception a real socket read raises, so the core's transport error
                # handling (UpstreamTimeoutError) applies unchanged.
                raise httpx.ReadTimeout(f"no bytes for {self._limit:g}s", request=self._request) from None
            yield part

    async def aclose(self) -> None:
        await self._inner.aclose()


def watch_silence(response: httpx.Response, limit: float) -> None:
    """Make reading ``response`` fail with ``httpx.ReadTimeout`` after ``limit`` seconds
    without a single byte (keep-alive comments and blank lines count as bytes)."""
    stream = response.stream
    if isinstance(stream, httpx.AsyncByteStream) and limit > 0:
        response.stream = _SilenceLimitedStream(stream, limit, response.request)
