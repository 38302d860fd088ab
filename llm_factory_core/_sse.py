"""A server-sent events decoder following the WHATWG rules (as openai-python's ``SSEDecoder``).

Blank line dispatches; ``:`` starts a comment (DashScope's ``:HTTP_STATUS/200``, DeepSeek's
``: keep-alive``); one space after the field colon is stripped; ``\\n``, ``\\r\\n`` and ``\\r``
line endings all work (httpx's line iterator splits on each).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

__all__ = ["ServerSentEvent", "aiter_sse", "decode_sse_lines"]


@dataclass(slots=True)
class ServerSentEvent:
    data: str = ""
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)
    """Comment lines seen inside this event (DashScope puts ``HTTP_STATUS/400`` there)."""


class _Decoder:
    __slots__ = ("_comments", "_data", "_event", "_id", "_retry")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self._comments: list[str] = []

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:
            if not self._data and self._event is None and self._id is None:
                self._comments = []
                return None
            sse = ServerSentEvent(
                data="\n".join(self._data),
                event=self._event,
                id=self._id,
                retry=self._retry,
                comments=self._comments,
            )
            self._reset()
            return sse
        if line[0] == ":":
            self._comments.append(line[1:].strip())
            return None
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def flush(self) -> ServerSentEvent | None:
        """An event still open when the stream ended (no trailing blank line) is dispatched."""
        return self.feed("") if (self._data or self._event is not None) else None


def decode_sse_lines(lines: list[str]) -> list[ServerSentEvent]:
    """Decode already-split lines; handy for tests and fakes."""
    decoder = _Decoder()
    events = [e for line in lines if (e := decoder.feed(line.rstrip("\r\n"))) is not None]
    last = decoder.flush()
    return events + ([last] if last else [])


async def _split_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """Lines of a byte stream ending in ``\n``, ``\r\n`` or ``\r`` (as httpx's ``aiter_lines``),
    each yielded as soon as its end arrives. Splitting bytes before decoding keeps a character
    cut between two chunks whole."""
    tail = b""
    async for chunk in chunks:
        data = tail + chunk if tail else chunk
        held = data[-1:] == b"\r"  # may be the first half of a \r\n cut between chunks
        if held:
            data = data[:-1]
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, tail = data.split(b"\n")
        if held:
            tail += b"\r"
        for line in lines:
            yield line.decode("utf-8", "replace")
    if tail:
        yield tail.rstrip(b"\r").decode("utf-8", "replace")


def _lines(response: httpx.Response) -> AsyncIterator[str]:
    # The aiohttp transport's streams hand over raw chunks: one layer instead of httpx's three
    # (raw -> bytes -> text -> lines). An encoded body still goes through httpx to be decoded.
    raw_chunks = getattr(response.stream, "raw_chunks", None)
    if raw_chunks is not None and "content-encoding" not in response.headers:
        return _split_lines(raw_chunks())
    return response.aiter_lines()


async def aiter_sse(response: httpx.Response) -> AsyncIterator[ServerSentEvent]:
    """Yield the events of a streaming httpx response as they arrive."""
    decoder = _Decoder()
    async for line in _lines(response):
        event = decoder.feed(line.rstrip("\r\n"))
        if event is not None:
            yield event
    last = decoder.flush()
    if last is not None:
        yield last
