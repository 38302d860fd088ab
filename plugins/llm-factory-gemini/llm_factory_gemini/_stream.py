"""Payloads of a ``streamGenerateContent?alt=sse`` reply, cut from each network read.

Normal events are SSE ``data:`` lines ended by a blank line (Gemini separates them with
``\\r\\n\\r\\n``). An error that happens mid-stream arrives as a raw, possibly multi-line, JSON
object that is *not* ``data:``-prefixed; a plain SSE decoder would drop it as an unknown field
and the stream would look like it simply ended. This mirrors the SDK's ``_iter_response_stream``:
non-``data:`` lines that start a JSON value are buffered until they parse.

Incremental and synchronous (fed each read by the provider's ``ChunkDecoder``), so the gateway
can decode a stream inside its splice; a read holding exactly one ``data:`` event, the usual
case, is cut without splitting lines.
"""

from __future__ import annotations

from llm_factory_core.providers import LineSplitter, json_loads, too_large

__all__ = ["PayloadDecoder"]


class PayloadDecoder:
    """``feed`` each read, then ``end``: each returns the JSON texts of the events it completes
    (SSE ``data``, lines joined, or a raw JSON object). An event is capped at ``max_event``."""

    __slots__ = ("_data", "_lines", "_raw", "_size", "max_event")

    def __init__(self, max_event: int) -> None:
        self.max_event = max_event
        self._lines = LineSplitter(max_event)
        self._data: list[str] = []
        self._raw: list[str] = []
        self._size = 0  # characters held in _data / _raw

    def feed(self, piece: bytes) -> list[bytes | str]:
        n = len(piece)
        if (
            n > 10
            and not (self._data or self._raw or self._lines.pending or self._lines.skip_lf)
            and piece[:6] == b"data: "
            and piece.find(b"\r") == n - 4
            and piece.find(b"\n") == n - 3
            and piece[n - 2 :] == b"\r\n"
        ):
            return [piece[6:-4]]  # the usual read: one whole event, \r\n\r\n-terminated
        out: list[bytes | str] = []
        for line in self._lines.feed(piece):
            self._line(line, out)
        return out

    def end(self) -> list[bytes | str]:
        out: list[bytes | str] = []
        for line in self._lines.end():
            self._line(line, out)
        if self._data:
            out.append("\n".join(self._data))
        if self._raw:
            out.append("\n".join(self._raw))  # incomplete JSON: the caller reports it as malformed
        self._data, self._raw, self._size = [], [], 0
        return out

    def _line(self, line: str, out: list[bytes | str]) -> None:
        if self._raw or (not self._data and line.lstrip().startswith(("{", "["))):
            self._raw.append(line)
            self._hold(len(line))
            text = "\n".join(self._raw)
            if _complete(text):
                self._raw, self._size = [], 0
                out.append(text)
        elif not line:
            if self._data:
                out.append("\n".join(self._data))
                self._data, self._size = [], 0
        elif line.startswith("data:"):
            value = line[5:]
            value = value[1:] if value.startswith(" ") else value
            self._hold(len(value))
            self._data.append(value)
        # ":" comments and other SSE fields (event, id, retry) carry nothing here.

    def _hold(self, n: int) -> None:
        self._size += n + 1
        if self._size > self.max_event:
            raise too_large("an event of the upstream stream", "max_event_bytes", self.max_event)


def _complete(text: str) -> bool:
    try:
        json_loads(text)
    except ValueError:
        return False
    return True
