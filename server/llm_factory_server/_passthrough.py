"""The stream pass-through: which streams may forward upstream bytes, and framing either kind.

``_chat`` asks the core for raw frames (``RAW_SSE``) when nothing downstream needs parsed chunks:
no tracing (its spans read each chunk), no stream continuation (it tracks the text sent). Raw
chunks from a pass-through provider are written as they are (``_chat._frame`` hands them here);
any other chunk is serialised there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llm_factory_core._raw_sse import RAW_SSE, RawChunk

if TYPE_CHECKING:
    from ._gateway import Gateway

__all__ = ["RAW_SSE", "RawChunk", "raw_frame", "wants_raw"]


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
