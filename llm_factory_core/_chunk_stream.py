"""A translated provider's stream decoder, fed each network read: one codec for the library's
chunks, the gateway's frames and the splice.

A provider whose upstream speaks another wire format (Gemini, Claude...) writes the translation
as a ``ChunkDecoder``: plain, synchronous, fed each read of the body (``feed``) and its end
(``end``), appending ``ChatCompletionChunk`` s. ``decoded_stream`` serves it to every caller:

* library callers iterate the chunks;
* the gateway (``RAW_SSE``) gets ``RawChunk`` s: the chunks of one read serialised into one write,
  so it does not serialise them again;
* once the gateway's stream is committed (``SPLICE``), every further read is decoded inside the
  upstream connection's ``data_received`` and written to the client: no generator step, task
  switch or ``send`` per chunk, as on the OpenAI pass-through (``_raw_sse``).

An error raised by ``feed`` (an error event, a blocked reply) is raised after the chunks appended
before it in the same read are delivered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, cast

import httpx

from ._raw_sse import RAW_SSE, RawChunk, raw_stream, source
from ._types import ChatCompletionChunk

__all__ = ["ChunkDecoder", "decoded_stream", "event_limit"]


class ChunkDecoder(Protocol):
    done: bool
    """True once the stream is over before its body ends (the rest is not read, ``end`` is not
    called); a decoder whose stream ends with its body keeps it False."""

    def feed(self, piece: bytes, out: list[ChatCompletionChunk]) -> None:
        """Append the chunks decoded from one read of the body; raise the provider's error for
        an error in the stream."""

    def end(self, out: list[ChatCompletionChunk]) -> None:
        """The body ended: append what is left (a last event, the usage chunk); raise when the
        stream did not finish."""


def event_limit(response: httpx.Response) -> int:
    """The largest event the stream's transport allows (``max_event_bytes``); decoders that
    buffer a partial event cap it at this."""
    return source(response)[1]


def decoded_stream(response: httpx.Response, decoder: ChunkDecoder) -> AsyncIterator[ChatCompletionChunk]:
    """The chunks ``decoder`` makes of ``response``'s body; ``RawChunk`` s under ``RAW_SSE``."""
    if RAW_SSE.get():
        return cast(AsyncIterator[ChatCompletionChunk], raw_stream(response, lambda _: _Framed(decoder)))
    return _chunks(response, decoder)


async def _chunks(response: httpx.Response, decoder: ChunkDecoder) -> AsyncIterator[ChatCompletionChunk]:
    reads = source(response)[0]
    async for piece in reads:
        out: list[ChatCompletionChunk] = []
        error = _run(decoder.feed, piece, out)
        for chunk in out:
            yield chunk
        if error is not None:
            raise error
        if decoder.done:
            return
    out = []
    error = _run(decoder.end, out)
    for chunk in out:
        yield chunk
    if error is not None:
        raise error


class _Framed:
    """A ``ChunkDecoder`` as the raw path's ``ReadDecoder``: each read's chunks in one ``RawChunk``."""

    __slots__ = ("decoder",)

    def __init__(self, decoder: ChunkDecoder) -> None:
        self.decoder = decoder

    @property
    def done(self) -> bool:
        return self.decoder.done

    def feed(self, piece: bytes) -> tuple[RawChunk | None, Exception | None]:
        out: list[ChatCompletionChunk] = []
        return _framed(out, _run(self.decoder.feed, piece, out))

    def end(self) -> tuple[RawChunk | None, Exception | None]:
        out: list[ChatCompletionChunk] = []
        return _framed(out, _run(self.decoder.end, out))


def _framed(chunks: list[ChatCompletionChunk], error: Exception | None) -> tuple[RawChunk | None, Exception | None]:
    if not chunks:
        return None, error
    raw = RawChunk()
    for chunk in chunks:
        raw.add_parsed(chunk)
    return raw, error


def _run(step: Callable[..., None], *args: Any) -> Exception | None:
    try:
        step(*args)
    except Exception as exc:
        return exc
    return None
