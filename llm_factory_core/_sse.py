"""A server-sent events decoder following the WHATWG rules (as openai-python's ``SSEDecoder``).

Blank line dispatches; ``:`` starts a comment (DashScope's ``:HTTP_STATUS/200``, DeepSeek's
``: keep-alive``); one space after the field colon is stripped; ``\\n``, ``\\r\\n`` and ``\\r``
line endings all work.

Bounded and linear: splitting scans each byte once (no re-scan of a held partial line), and a
line, or an event's data and comments together, longer than ``max_event_bytes`` (16 MiB unless
the stream says otherwise, see ``_bounded.BoundedStream``) fails the stream with ``LimitExceeded``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

from ._bounded import too_large

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "LineSplitter",
    "SSEReader",
    "ServerSentEvent",
    "aiter_sse",
    "decode_sse_lines",
    "unify_newlines",
]

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


@dataclass(slots=True)
class ServerSentEvent:
    data: str = ""
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)
    """Comment lines seen inside this event (DashScope puts ``HTTP_STATUS/400`` there)."""


class _Decoder:
    __slots__ = ("_comments", "_data", "_event", "_id", "_max", "_retry", "_size")

    def __init__(self, max_event: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event
        self._reset()

    def _reset(self) -> None:
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self._comments: list[str] = []
        self._size = 0
        """Characters of data and comments held for the event being read."""

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:
            if not self._data and self._event is None and self._id is None:
                self._comments = []
                self._size = 0
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
            self._hold(len(line))
            self._comments.append(line[1:].strip())
            return None
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._hold(len(value))
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _hold(self, n: int) -> None:
        self._size += n
        if self._size > self._max:
            raise too_large("an event of the upstream stream", "max_event_bytes", self._max)

    def flush(self) -> ServerSentEvent | None:
        """An event still open when the stream ended (no trailing blank line) is dispatched."""
        return self.feed("") if (self._data or self._event is not None) else None


def decode_sse_lines(lines: list[str]) -> list[ServerSentEvent]:
    """Decode already-split lines; handy for tests and fakes."""
    decoder = _Decoder()
    events = [e for line in lines if (e := decoder.feed(line.rstrip("\r\n"))) is not None]
    last = decoder.flush()
    return events + ([last] if last else [])


def unify_newlines(chunk: bytes, skip_lf: bool) -> tuple[bytes, bool]:
    """``chunk`` with its ``\r\n`` and ``\r`` line ends as ``\n``, and whether it ended in ``\r``.
    ``skip_lf``: the previous chunk ended in ``\r``, so a ``\n`` opening this one ends that line."""
    if skip_lf and chunk:
        skip_lf = False
        if chunk[0] == 0x0A:
            chunk = chunk[1:]
    if b"\r" in chunk:
        skip_lf = chunk[-1] == 0x0D
        chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return chunk, skip_lf


class LineSplitter:
    """Lines of a byte stream ending in ``\n``, ``\r\n`` or ``\r``, without their ends: ``feed``
    returns the lines each read completes, ``end`` the last one. Splitting bytes before decoding
    keeps a character cut between two reads whole.

    Linear: each read is scanned once; a partial line is appended to (never re-joined with the
    next read and re-scanned, which made a long line quadratic), and capped at ``max_line``."""

    __slots__ = ("max_line", "pending", "skip_lf")

    def __init__(self, max_line: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_line = max_line
        self.pending = bytearray()
        self.skip_lf = False  # the last read ended in \r: a \n opening the next one completes a \r\n

    def feed(self, chunk: bytes) -> list[str]:
        if self.skip_lf or b"\r" in chunk:
            chunk, self.skip_lf = unify_newlines(chunk, self.skip_lf)
        lines = chunk.split(b"\n")
        last = lines.pop()
        max_line = self.max_line
        out = []
        if lines:
            pending = self.pending
            if pending:
                pending += lines[0]
                lines[0] = bytes(pending)
                self.pending = bytearray()
            for line in lines:
                if len(line) > max_line:
                    raise too_large("a line of the upstream stream", "max_event_bytes", max_line)
                out.append(line.decode("utf-8", "replace"))
        if last:
            self.pending += last
            if len(self.pending) > max_line:
                raise too_large("a line of the upstream stream", "max_event_bytes", max_line)
        return out

    def end(self) -> list[str]:
        pending, self.pending = self.pending, bytearray()
        return [pending.decode("utf-8", "replace")] if pending else []


class SSEReader:
    """The events of a byte stream, fed read by read: ``feed`` returns the events each read
    completes, ``end`` the one still open when the stream ended. For decoders that run per read
    (a provider's ``ChunkDecoder``); ``aiter_sse`` is the same codec as an async iterator."""

    __slots__ = ("_decoder", "_lines")

    def __init__(self, max_event: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._lines = LineSplitter(max_event)
        self._decoder = _Decoder(max_event)

    def feed(self, piece: bytes) -> list[ServerSentEvent]:
        decoder = self._decoder
        return [e for line in self._lines.feed(piece) if (e := decoder.feed(line)) is not None]

    def end(self) -> list[ServerSentEvent]:
        events = [e for line in self._lines.end() if (e := self._decoder.feed(line)) is not None]
        last = self._decoder.flush()
        return events + ([last] if last is not None else [])


async def _split_lines(chunks: AsyncIterator[bytes], max_line: int = DEFAULT_MAX_EVENT_BYTES) -> AsyncIterator[str]:
    """``LineSplitter`` over an async byte stream: each line as soon as its end arrives."""
    splitter = LineSplitter(max_line)
    async for chunk in chunks:
        for line in splitter.feed(chunk):
            yield line
    for line in splitter.end():
        yield line


def _lines(response: httpx.Response) -> tuple[AsyncIterator[str], int]:
    # A stream from the provider helpers is a ``BoundedStream``: its ``raw_chunks`` are the
    # decoded body (one layer instead of httpx's three: raw -> bytes -> text -> lines) and it
    # carries the configured cap. Any other response goes through httpx's decoding.
    stream = response.stream
    max_line = getattr(stream, "max_line", DEFAULT_MAX_EVENT_BYTES)
    raw_chunks = getattr(stream, "raw_chunks", None)
    if raw_chunks is not None and "content-encoding" not in response.headers:
        return _split_lines(raw_chunks(), max_line), max_line
    return _split_lines(response.aiter_bytes(), max_line), max_line


async def aiter_sse(response: httpx.Response) -> AsyncIterator[ServerSentEvent]:
    """Yield the events of a streaming httpx response as they arrive."""
    lines, max_event = _lines(response)
    decoder = _Decoder(max_event)
    async for line in lines:  # already without line endings
        event = decoder.feed(line)
        if event is not None:
            yield event
    last = decoder.flush()
    if last is not None:
        yield last
