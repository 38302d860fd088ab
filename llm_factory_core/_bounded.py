"""Bounds on what an upstream's reply can make the gateway hold, on both HTTP transports.

A hostile or broken upstream must not be able to take the gateway's memory or CPU: a gzip bomb
(1 MB that inflates to gigabytes), a reply of endless bytes, an SSE line that never ends. So:

- we ask for uncompressed replies (``Accept-Encoding: identity``, set by the provider helpers);
  an upstream that compresses anyway (gzip, deflate) is inflated here in bounded steps, and any
  other encoding (or a corrupt body) is an :class:`UndecodableBody`;
- a non-streamed reply is read up to ``max_response_bytes`` (decoded), an error reply up to
  ``max_error_body_bytes`` (the rest is not read), a compressed stream inflates to at most
  ``max_response_bytes`` in all, and a line of a text stream is at most ``max_event_bytes``.

Both errors are ``httpx.TransportError`` subclasses: they travel the transport's error path and
the provider helpers turn them into a retryable ``ServerError`` (the attempt fails over).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from ._errors import ProviderError, ServerError

__all__ = [
    "BoundedStream",
    "LimitExceeded",
    "UndecodableBody",
    "body_of",
    "bound_response",
    "once",
    "read_capped",
    "too_large",
    "uncommitted_overflow",
]

_STEP = 256 * 1024
"""The most bytes one inflate step produces: memory per chunk stays small whatever the ratio."""


class LimitExceeded(httpx.TransportError):
    """A reply broke one of the size caps (``Limits``); the message names the setting."""


class UndecodableBody(httpx.TransportError):
    """A ``Content-Encoding`` we do not decode, or a corrupt compressed body."""


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"


def too_large(what: str, setting: str, cap: int) -> LimitExceeded:
    return LimitExceeded(
        f"{what} exceeded the limit {setting}={cap} ({_size(cap)}); if this upstream is trusted, "
        f"raise it: LLMFactory(..., {setting}=...) or `router: {{{setting}: ...}}` in the configuration"
    )


def uncommitted_overflow(provider: str, deployment: str, cap: int) -> ProviderError:
    """A stream sent more than ``cap`` bytes of chunks without content: the router holds those
    until the first content (so it can still fail over), and will not hold more."""
    return ServerError(
        f"the upstream stream sent more than max_uncommitted_bytes={cap} ({_size(cap)}) of chunks "
        "before its first content; if this upstream is trusted, raise it: "
        "LLMFactory(..., max_uncommitted_bytes=...) or `router: {max_uncommitted_bytes: ...}`",
        provider=provider,
        deployment=deployment,
    )


class _Inflate:
    """gzip / deflate, inflated at most ``_STEP`` bytes at a time."""

    __slots__ = ("_encoding", "_raw_fallback", "_started", "_z")

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        # "deflate" is meant to be zlib-wrapped, but servers send raw deflate too (httpx and
        # browsers accept both): try the wrapper first, raw deflate if the first bytes say so.
        self._raw_fallback = encoding == "deflate"
        self._z = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding != "deflate" else zlib.MAX_WBITS)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        z = self._z
        while True:
            try:
                out = z.decompress(data, _STEP)
            except zlib.error as exc:
                if self._raw_fallback and not self._started:
                    self._raw_fallback = False
                    self._z = z = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise UndecodableBody(f"upstream sent a corrupt {self._encoding} body ({exc})") from None
            self._started = True
            if out:
                yield out
            data = z.unconsumed_tail
            # Output may still be pending inside zlib when a step came out full.
            if z.eof or (not data and len(out) < _STEP):
                return


class _Refuse:
    """An encoding we never asked for and do not decode: fail on the first byte, not before
    (an error status with such a body still reports its status)."""

    __slots__ = ("_encoding",)

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding

    def feed(self, data: bytes) -> Iterator[bytes]:
        raise UndecodableBody(
            f"upstream sent a body with Content-Encoding {self._encoding[:40]!r}, which we did not "
            "ask for (we send Accept-Encoding: identity) and do not decode"
        )


_Decoder = _Inflate | _Refuse


def _decoder(encoding: str | None) -> _Decoder | None:
    if encoding is None:
        return None
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return None
    if name in ("gzip", "x-gzip", "deflate"):
        return _Inflate("gzip" if name == "x-gzip" else name)
    return _Refuse(name)


async def read_capped(
    chunks: AsyncIterator[bytes], encoding: str | None, cap: int, setting: str, *, truncate: bool = False
) -> bytes:
    """The whole body, decoded. Past ``cap`` bytes (received or decoded): raise
    :class:`LimitExceeded`, or with ``truncate`` stop reading and return the first ``cap`` bytes
    (error bodies: the status is the error; a corrupt encoding then gives what was decoded)."""
    decoder = _decoder(encoding)
    out = bytearray()
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            for piece in (chunk,) if decoder is None else decoder.feed(chunk):
                out += piece
                if len(out) > cap:
                    if truncate:
                        return bytes(out[:cap])
                    raise too_large("the upstream reply", setting, cap)
            if received > cap:  # bytes after the end of a compressed body still arrive
                if truncate:
                    return bytes(out[:cap])
                raise too_large("the upstream reply", setting, cap)
    except UndecodableBody:
        if truncate:
            return bytes(out)
        raise
    return bytes(out)


async def once(content: bytes) -> AsyncIterator[bytes]:
    yield content


def body_of(response: httpx.Response) -> tuple[AsyncIterator[bytes], str | None]:
    """``response``'s body as it arrives, and the encoding it arrives in. A reply already read
    into memory (``httpx.MockTransport``'s) is its decoded content."""
    if response.is_stream_consumed:
        return once(response.content), None
    return response.aiter_raw(), response.headers.get("content-encoding")


class BoundedStream(httpx.AsyncByteStream):
    """A streamed body, decoded in bounded steps when compressed, with its caps.

    ``raw_chunks()`` is the decoded body for the SSE decoder (which checks line sizes itself,
    reading ``max_line``); iterating the stream (httpx's ``aiter_bytes`` / ``aiter_lines``, what
    plugins with their own framing use) also fails a text line longer than ``max_line``."""

    __slots__ = ("_check_lines", "_decoder", "_inner", "_max_total", "max_line")

    def __init__(
        self, inner: httpx.AsyncByteStream, encoding: str | None, *, max_line: int, max_total: int, text: bool
    ) -> None:
        self._inner = inner
        self._decoder = _decoder(encoding)
        self._max_total = max_total
        self._check_lines = text
        self.max_line = max_line

    def raw_chunks(self) -> AsyncIterator[bytes]:
        if self._decoder is None:
            raw = getattr(self._inner, "raw_chunks", None)
            return raw() if raw is not None else self._inner.__aiter__()  # no extra layer per chunk
        return self._decoded()

    def splicer(self) -> Any:
        """The inner stream's ``splice`` (see ``FastResponseStream``) when the body needs no
        decoding, else None."""
        inner = self._inner
        return inner.splice if self._decoder is None and getattr(inner, "can_splice", False) else None  # type: ignore[attr-defined]

    async def _decoded(self) -> AsyncIterator[bytes]:
        decoder, cap = self._decoder, self._max_total
        assert decoder is not None
        total = 0
        async for chunk in self._inner:
            for piece in decoder.feed(chunk):
                total += len(piece)
                if total > cap:
                    raise too_large("the decompressed upstream stream", "max_response_bytes", cap)
                yield piece

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if not self._check_lines:
            async for chunk in self.raw_chunks():
                yield chunk
            return
        cap = self.max_line
        run = 0  # bytes since the last line break
        async for chunk in self.raw_chunks():
            cut = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
            run = run + len(chunk) if cut < 0 else len(chunk) - cut - 1
            if run > cap:
                raise too_large("a line of the upstream stream", "max_event_bytes", cap)
            yield chunk

    async def aclose(self) -> None:
        # Let go of the inner stream: httpx's holds its response, which holds this stream; kept,
        # that reference cycle leaves every streamed reply to the garbage collector's pauses.
        inner, self._inner = self._inner, _CLOSED
        await inner.aclose()


_CLOSED = httpx.ByteStream(b"")


def _is_text(content_type: str | None) -> bool:
    """Line-framed bodies (SSE, JSON lines); binary framings (AWS event stream) carry their
    own length checks."""
    if not content_type:
        return True
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind.startswith("text/") or "json" in kind


def bound_response(response: httpx.Response, *, max_line: int, max_total: int) -> httpx.Response:
    """Put ``response``'s body behind a :class:`BoundedStream` (in place; returns it). Its
    ``Content-Encoding`` is consumed here, so httpx never inflates the body unbounded."""
    inner = response.stream
    if not isinstance(inner, httpx.AsyncByteStream):
        raise TypeError("bound_response needs a streamed response of an httpx.AsyncClient")
    headers = response.headers
    encoding = headers.get("content-encoding")
    if encoding is not None:
        del headers["content-encoding"]
        headers.pop("content-length", None)
    response.stream = BoundedStream(
        inner,
        encoding,
        max_line=max_line,
        max_total=max_total,
        text=_is_text(headers.get("content-type")),
    )
    return response
