"""Payloads of a ``streamGenerateContent?alt=sse`` reply.

Normal events are SSE ``data:`` lines ended by a blank line (Gemini separates them with
``\\r\\n\\r\\n``). An error that happens mid-stream arrives as a raw, possibly multi-line, JSON
object that is *not* ``data:``-prefixed; a plain SSE decoder would drop it as an unknown field
and the stream would look like it simply ended. This mirrors the SDK's ``_iter_response_stream``:
non-``data:`` lines that start a JSON value are buffered until they parse.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from llm_factory_core.providers import json_loads

__all__ = ["aiter_payloads"]


async def aiter_payloads(response: httpx.Response) -> AsyncIterator[str]:
    """Yield each event's JSON text: SSE ``data`` (lines joined) or a raw JSON object."""
    data: list[str] = []
    raw: list[str] = []
    async for line in response.aiter_lines():
        line = line.rstrip("\r\n")
        if raw or (not data and line.lstrip().startswith(("{", "["))):
            raw.append(line)
            text = "\n".join(raw)
            if _complete(text):
                raw = []
                yield text
            continue
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
        # ":" comments and other SSE fields (event, id, retry) carry nothing here.
    if data:
        yield "\n".join(data)
    if raw:
        yield "\n".join(raw)  # incomplete JSON: the caller reports it as malformed


def _complete(text: str) -> bool:
    try:
        json_loads(text)
    except ValueError:
        return False
    return True
