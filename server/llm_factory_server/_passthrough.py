"""The pass-through: which replies may forward upstream bytes, and framing either kind of chunk.

Non-streamed replies: ``_chat`` sets ``RAW_REPLY`` under the same conditions; a plain reply then
comes back as a ``RawCompletion`` (``llm_factory_core._raw_reply``) whose bytes are the answer.

``_chat`` asks the core for raw frames (``RAW_SSE``) when nothing downstream needs parsed chunks:
no tracing (its spans read each chunk), no stream continuation (it tracks the text sent). Raw
chunks from a pass-through provider are written as they are (``_chat._frame`` hands them here);
any other chunk is serialised there.

Once such a stream is committed (its status and first chunk sent) and the server offers the
``llm_factory.splice`` extension (``_protocol``), ``_chat`` sets a ``ClientSink`` as the core's
``SPLICE``: every further upstream read is checked and written to the client inside the upstream
connection's ``data_received``; the request's task wakes once, when the stream ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llm_factory_core._raw_reply import RAW_REPLY, RawCompletion
from llm_factory_core._raw_sse import RAW_SSE, SPLICE, RawChunk

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._gateway import Gateway
    from ._protocol import ResponseSplice

__all__ = ["RAW_REPLY", "RAW_SSE", "SPLICE", "ClientSink", "RawChunk", "RawCompletion", "raw_frame", "wants_raw"]


def wants_raw(gateway: Gateway) -> bool:
    router = gateway.factory.router
    return gateway.tracing is None and router.tracing is None and not router.settings.stream_continuation


def raw_frame(chunk: RawChunk, record: Any, reply: list[str] | None) -> bytes:
    """The bytes of a pass-through chunk, with what ``_chat._frame`` records of a parsed one:
    events streamed, usage (for the log, metrics and the usage recorder), text when content is
    logged; the usage-only event is left out when the gateway, not the client, asked for it."""
    record.chunks += chunk.events
    if chunk.usage is not None:
        record.usage = chunk.usage
        if record.ticket is not None:
            record.ticket.usage = chunk.usage_object()
    if reply is not None:
        reply.extend(chunk.texts)
    return chunk.data(strip_usage=record.strip_usage)


class ClientSink:
    """The core's ``RawSink`` for one committed stream: each chunk recorded as ``raw_frame``
    records it and written through the server's ``ResponseSplice``."""

    __slots__ = ("_record", "_reply", "_target", "paused")

    def __init__(self, target: ResponseSplice, record: Any, reply: list[str] | None) -> None:
        self._target = target
        self._record = record
        self._reply = reply
        self.paused: Callable[[], bool] = target.paused  # asked after every read: no call of its own

    def write(self, chunk: RawChunk) -> None:
        if data := raw_frame(chunk, self._record, self._reply):
            self._target.write(data)

    def when_writable(self, callback: Callable[[], None] | None) -> None:
        self._target.when_writable(callback)
