"""Pass-through of an OpenAI SSE stream: the upstream's bytes, checked, not re-encoded.

A gateway that speaks OpenAI to an OpenAI upstream needs no translation. Parsing each event into a
``ChatCompletionChunk`` and serialising it again costs most of a gateway's CPU per chunk, so a
caller that only forwards bytes (the server) asks for this path by setting ``RAW_SSE`` around its
iteration; providers with the ``raw_sse`` capability then yield ``RawChunk`` objects: the frames to
write plus the few facts the streaming contract needs (content seen: the commit point; finish
reason seen: a complete stream; usage; text, for content logging). Library callers never see one.

Each event is decoded (orjson, about a microsecond) and checked against the plain shape of an
OpenAI chunk: known keys only, the stream's first id and created time, a non-empty model,
``chat.completion.chunk``, choices with a delta of plain strings, a finish reason OpenAI defines,
integer usage counts. Such an event is forwarded byte for byte. Anything else (Azure's filter
chunks, a changed id, tool calls, logprobs, an unknown field...) goes the ordinary way:
``adapt_chunk``, validation, serialisation, so the result is exactly what the parsed path sends.
Error events raise as in ``decode_stream``, after the frames before them in the same read.

Events that arrive in one network read travel as one ``RawChunk`` (one write downstream).

Once the caller's stream is committed it may set a ``RawSink`` as ``SPLICE``: on aiohttp, the
rest of the stream is then handled inside the upstream connection's ``data_received`` (each read
decoded as above and written to the sink), and the stream's iteration returns, or raises as it
would have, when it ends. Every layer above (the router's deadline, failure accounting and
health, the provider's error mapping) still wraps that one long read, at no cost per chunk.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from ._bounded import too_large
from ._errors import UpstreamConnectionError
from ._json import loads
from ._sse import DEFAULT_MAX_EVENT_BYTES, decode_sse_lines, unify_newlines
from ._types import ChatCompletionChunk, CompletionUsage

if TYPE_CHECKING:
    from ._openai_codec import OpenAICompatibleProvider, OpenAIStreamState

__all__ = ["RAW_SSE", "SPLICE", "RawChunk", "RawSink", "ReadDecoder", "raw_openai_stream", "raw_stream", "source"]

log = logging.getLogger("llm_factory_core.openai_codec")

RAW_SSE: ContextVar[bool] = ContextVar("llm_factory_raw_sse", default=False)
"""True while a caller that writes ``RawChunk.frames`` as they are iterates a stream."""


class RawSink(Protocol):
    """Where a spliced stream's chunks go (``SPLICE``): called from the upstream connection's
    ``data_received``, so ``write`` must not block or raise. ``paused`` says the client's
    connection is full (upstream reading stops); ``when_writable`` takes the callback that
    resumes it (None: forget it)."""

    def write(self, chunk: RawChunk) -> None: ...

    def paused(self) -> bool: ...

    def when_writable(self, callback: Callable[[], None] | None) -> None: ...


SPLICE: ContextVar[RawSink | None] = ContextVar("llm_factory_splice", default=None)
"""Set by a caller of the raw path once its stream is committed: the stream's remaining reads are
then handled as they arrive, inside the upstream connection's ``data_received``, and written to
the sink, with no task switch or generator step per chunk; iterating the stream returns when it
ends (or raises as it would have). Only streams that can splice (aiohttp, no compression) do;
the others go on yielding ``RawChunk`` s."""

_FINISH = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
_TOP = frozenset(
    {"id", "object", "created", "model", "choices", "usage", "system_fingerprint", "service_tier", "obfuscation"}
)
_CHOICE = frozenset({"index", "delta", "finish_reason", "logprobs"})
_DELTA = frozenset({"role", "content", "refusal", "reasoning_content"})
_OTHER_TEXT = ("refusal", "reasoning_content")


class RawChunk:
    """One or more SSE events to forward as they are (``frames``: ``data: ...\\n\\n`` each)."""

    __slots__ = ("content", "events", "frames", "texts", "usage", "usage_data", "usage_frame")

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.events = 0
        self.usage_frame: bytes | None = None
        """An event with usage and no choices (``include_usage``'s last chunk), written after
        ``frames`` unless the caller strips it (it asked for the usage, its client did not)."""
        self.usage_data: Any = None
        """The usage as sent (a dict), or a ``CompletionUsage`` from the parsed path."""
        self.content = False
        """True when an event carries something a caller sees (text, reasoning, a refusal, tool
        calls, a finish reason): the commit point."""
        self.usage: tuple[int, int] | None = None
        """(prompt, completion) tokens of the last event with usage."""
        self.texts: list[str] = []
        """The content deltas, for content logging."""

    # The router's view of a chunk (``Router._first_content``): only these two are used.
    def has_content(self) -> bool:
        return self.content

    def model_dump_json(self) -> str:
        return self.data().decode("utf-8", "replace")

    def data(self, *, strip_usage: bool = False) -> bytes:
        frames = self.frames
        if self.usage_frame is not None and not strip_usage:
            frames = [*frames, self.usage_frame]
        return frames[0] if len(frames) == 1 else b"".join(frames)

    def usage_object(self) -> CompletionUsage | None:
        usage = self.usage_data
        return usage if usage is None or isinstance(usage, CompletionUsage) else CompletionUsage.model_validate(usage)

    def add(self, frame: bytes, usage_only: bool) -> None:
        self.events += 1
        if usage_only:
            self.usage_frame = frame
        else:
            self.frames.append(frame)

    def add_parsed(self, chunk: ChatCompletionChunk) -> None:
        """An event that took the ordinary path, serialised as the parsed path does."""
        frame = b"data: " + chunk.__pydantic_serializer__.to_json(chunk, exclude_none=True) + b"\n\n"
        self.add(frame, chunk.usage is not None and not chunk.choices)
        if chunk.has_content():
            self.content = True
        if chunk.usage is not None:
            self.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            self.usage_data = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                self.texts.append(choice.delta.content)


def _plain(provider: OpenAICompatibleProvider, data: dict[str, Any], state: OpenAIStreamState, out: RawChunk) -> bool:
    """Whether ``data`` may be forwarded unchanged; records its facts in ``state`` and ``out``.
    Written for the common case (a content delta under the stream's id): a few lookups."""
    if data.get("object") != "chat.completion.chunk" or not data.keys() <= _TOP:
        return False
    cid, created = data.get("id"), data.get("created")
    first = False
    if cid != state.id or created != state.created:
        if state.id:
            return False  # the parsed path rewrites it to the stream's first id and time
        if type(cid) is not str or not cid or type(created) is not int or not created:
            return False
        first = True
    model = data.get("model")
    if type(model) is not str or not model:
        return False
    choices = data.get("choices")
    if type(choices) is not list:
        return False
    usage = data.get("usage")
    if usage is not None:
        if type(usage) is not dict:
            return False
        prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        if type(prompt) is not int or type(completion) is not int or type(usage.get("total_tokens", 0)) is not int:
            return False
    elif not choices:
        return False  # the parsed path drops an event with neither choices nor usage
    content = finished = False
    text = None
    for choice in choices:
        if type(choice) is not dict or not choice.keys() <= _CHOICE or choice.get("logprobs") is not None:
            return False
        delta = choice.get("delta")
        if type(delta) is not dict or type(choice.get("index", 0)) is not int:
            return False
        text = delta.get("content")
        if text is not None and type(text) is not str:
            return False
        if len(delta) > (text is not None or "content" in delta):  # anything besides the content
            if not delta.keys() <= _DELTA:
                return False
            role = delta.get("role")
            if role is not None and role != "assistant":
                return False
            for key in _OTHER_TEXT:
                value = delta.get(key)
                if value is not None:
                    if type(value) is not str:
                        return False
                    content = content or bool(value)
        reason = choice.get("finish_reason")
        if reason is not None:
            if reason not in _FINISH:
                return False  # the provider maps (or rejects) it: the parsed path
            content = finished = True
    if not provider.raw_passthrough(data, state):  # last: an event reaches it only when forwarded
        return False
    if first:
        state.id, state.created = cid, created
    if finished:
        state.finished = True
    for choice in choices:
        text = choice["delta"].get("content")
        if text:
            out.content = True
            out.texts.append(text)
    if content:
        out.content = True
    if usage is not None:
        out.usage = (usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
        out.usage_data = usage
    return True


def _payload(event: bytes) -> bytes | None:
    """The data of one SSE event (its lines joined by ``\\n``), None when it has none."""
    if event[:6] == b"data: " and b"\n" not in event:
        return event[6:]
    lines = event.decode("utf-8", "replace").split("\n")
    decoded = decode_sse_lines(lines)
    if not decoded or not decoded[0].data:
        return None
    return decoded[0].data.encode()


def source(response: httpx.Response) -> tuple[AsyncIterator[bytes], int, Any]:
    """The body's reads, the event size cap, and the stream's ``splice`` (None without one)."""
    stream = response.stream
    max_event = getattr(stream, "max_line", DEFAULT_MAX_EVENT_BYTES)
    raw_chunks = getattr(stream, "raw_chunks", None)
    if raw_chunks is not None and "content-encoding" not in response.headers:
        splicer = getattr(stream, "splicer", None)
        return raw_chunks(), max_event, splicer() if splicer is not None else None
    return response.aiter_bytes(), max_event, None


class _Decoder:
    """The pass-through's work per network read: whole events cut out and checked into one
    ``RawChunk``. ``feed`` and ``end`` return it (None: nothing to write) and an error to raise
    after writing it; ``done`` turns True at ``[DONE]`` (the rest of the body is ignored)."""

    __slots__ = ("done", "max_event", "pending", "provider", "skip_lf", "state")

    def __init__(self, provider: OpenAICompatibleProvider, max_event: int, state: OpenAIStreamState) -> None:
        self.provider = provider
        self.state = state
        self.max_event = max_event
        self.pending = b""
        self.skip_lf = False  # the last read ended in \r: a \n opening the next one completes a \r\n
        self.done = False

    def feed(self, piece: bytes) -> tuple[RawChunk | None, Exception | None]:
        if (
            not self.pending
            and piece[:6] == b"data: "
            and piece.find(b"\n") == len(piece) - 2
            and piece[-1:] == b"\n"
            and not self.skip_lf
            and b"\r" not in piece
            and len(piece) <= self.max_event
        ):
            # The usual read: one whole single-line event. Its bytes are its frame (no copy).
            out = RawChunk()
            try:
                self.done = _data(self.provider, self.state, piece[6:-2], piece, out)
            except _Pending as failed:
                return None, failed.error
            except Exception as exc:
                return None, exc
            return (out if out.events else None), None
        if self.skip_lf or b"\r" in piece:
            piece, self.skip_lf = unify_newlines(piece, self.skip_lf)
        pending = self.pending + piece if self.pending else piece
        end = pending.rfind(b"\n\n")
        max_event = self.max_event
        if end < 0:
            self.pending = pending
            if len(pending) > max_event:
                return None, too_large("an event of the upstream stream", "max_event_bytes", max_event)
            return None, None
        block, self.pending = pending[:end], pending[end + 2 :]
        return self._events(block.split(b"\n\n"))

    def end(self) -> tuple[RawChunk | None, Exception | None]:
        """The body ended: an event still open is dispatched; a stream without a finish reason
        (and no ``[DONE]``) is an error."""
        last = self.pending.strip(b"\n")
        self.pending = b""
        out, error = self._events([last]) if last else (None, None)
        if error is None and not self.done and not self.state.finished:
            error = self.provider.error(UpstreamConnectionError, "upstream closed the stream before it finished")
        return out, error

    def _events(self, events: list[bytes]) -> tuple[RawChunk | None, Exception | None]:
        out = RawChunk()
        error: Exception | None = None
        provider, state, max_event = self.provider, self.state, self.max_event
        try:
            for event in events:
                if len(event) > max_event:
                    raise too_large("an event of the upstream stream", "max_event_bytes", max_event)
                event = event.lstrip(b"\n")
                if event and _event(provider, state, event, out):
                    self.done = True
                    break
        except _Pending as failed:
            error = failed.error  # what came before the error event in the same read still counts
        except Exception as exc:
            error = exc
        return (out if out.events else None), error


def raw_openai_stream(
    provider: OpenAICompatibleProvider, response: httpx.Response, state: OpenAIStreamState | None = None
) -> AsyncIterator[RawChunk]:
    """``decode_stream``'s contract, yielding ``RawChunk`` s (see the module's docstring). Once a
    ``RawSink`` is set (``SPLICE``), the rest of the stream is spliced into it instead."""
    if state is None:
        from ._openai_codec import OpenAIStreamState

        state = OpenAIStreamState(provider.settings.model)
    stream_state = state
    return raw_stream(response, lambda max_event: _Decoder(provider, max_event, stream_state))


class ReadDecoder(Protocol):
    """Turns each network read into one ``RawChunk`` (None: nothing to write) and an error to
    raise after writing it; ``done`` turns True when the stream is over before its body ends."""

    @property
    def done(self) -> bool: ...

    def feed(self, piece: bytes) -> tuple[RawChunk | None, Exception | None]: ...

    def end(self) -> tuple[RawChunk | None, Exception | None]: ...


async def raw_stream(response: httpx.Response, make_decoder: Callable[[int], ReadDecoder]) -> AsyncIterator[RawChunk]:
    """The body's reads through a ``ReadDecoder`` (made with the stream's event size cap), as
    ``RawChunk`` s; once a ``RawSink`` is set (``SPLICE``), spliced into it instead."""
    chunks, max_event, splice = source(response)
    decoder = make_decoder(max_event)
    ended = False
    while not (ended or decoder.done):
        if splice is not None and (sink := SPLICE.get()) is not None:
            await _spliced(splice, decoder, sink)
            return
        try:
            piece = await chunks.__anext__()
        except StopAsyncIteration:
            ended = True
            out, error = decoder.end()
        else:
            out, error = decoder.feed(piece)
        if out is not None:
            yield out
        if error is not None:
            raise error


async def _spliced(splice: Any, decoder: ReadDecoder, sink: RawSink) -> None:
    """Hand every further read to ``sink`` from the connection's own ``data_received``."""

    def on_data(piece: bytes) -> bool:
        out, error = decoder.feed(piece)
        if out is not None:
            sink.write(out)
        if error is not None:
            raise error
        return decoder.done

    await splice(on_data, sink)
    if not decoder.done:
        out, error = decoder.end()
        if out is not None:
            sink.write(out)
        if error is not None:
            raise error


def _event(provider: OpenAICompatibleProvider, state: OpenAIStreamState, event: bytes, out: RawChunk) -> bool:
    """Handle one event into ``out``; True at ``[DONE]``. An error event raises ``_Pending``: the
    caller yields the frames before it, then raises the provider's error."""
    payload = _payload(event)
    if payload is None:
        return False
    return _data(provider, state, payload, None, out)


def _data(
    provider: OpenAICompatibleProvider, state: OpenAIStreamState, payload: bytes, frame: bytes | None, out: RawChunk
) -> bool:
    """``_event`` for an event's data; ``frame``: the event's bytes when they are exactly
    ``data: <payload>\n\n`` (forwarded as they are), else None (framed here)."""
    if not payload:
        return False  # an event with empty data is not dispatched (SSE)
    if payload[:6] == b"[DONE]":
        return True
    try:
        data = loads(payload)
    except ValueError:
        log.warning("%s: skipped a malformed stream event", provider.name)
        return False
    if not isinstance(data, dict):
        log.warning("%s: skipped a stream event that is not an object", provider.name)
        return False
    if data.get("error"):
        raise _Pending(provider.error_from_payload(data))
    if _plain(provider, data, state, out):
        out.add(frame if frame is not None else b"data: " + payload + b"\n\n", not data["choices"])
        return False
    adapted = provider.adapt_chunk(data, state)
    if adapted is None:
        return False
    for item in adapted if isinstance(adapted, list) else (adapted,):
        try:
            chunk = ChatCompletionChunk.model_validate(item)
        except ValueError:
            log.warning("%s: skipped a stream event of unexpected shape", provider.name)
            continue
        out.add_parsed(chunk)
    return False


class _Pending(Exception):
    """An error event inside the stream (carries the provider's typed error)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
