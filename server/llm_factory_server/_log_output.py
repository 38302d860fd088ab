"""Where the gateway's log lines go: stderr, with the request log's lines coalesced.

Python's stderr is line-buffered, so one access line per request is one ``write`` system call per
request, on the event loop's thread: under load that was about a tenth of a non-streamed request's
CPU. ``CoalescingStreamHandler`` keeps INFO lines written on the event loop for at most
``interval`` seconds (or ``max_bytes``) and writes them together, as nginx's ``access_log ...
buffer= flush=`` does. A warning or error, a line from any other thread, shutdown
(``logging.shutdown`` flushes every handler) and a full buffer write at once, so nothing that
explains a failure waits, and a clean exit loses nothing; a killed process loses at most the last
``interval`` of request lines.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TextIO

__all__ = ["CoalescingStreamHandler"]


class CoalescingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A ``StreamHandler`` that writes the INFO lines of one event-loop turn burst together."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.1, max_bytes: int = 64 * 1024) -> None:
        super().__init__(stream)
        self.interval = interval
        self.max_bytes = max_bytes
        self._pending: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            self._pending.append(line)
            self._size += len(line)
            loop = _running_loop() if record.levelno <= logging.INFO else None
            if loop is None or self._size >= self.max_bytes:
                # A warning, a thread without a loop or a full buffer: now, with what came before.
                self._write_pending()
            elif self._timer is None:
                self._timer = loop.call_later(self.interval, self.flush)
        except RecursionError:  # pragma: no cover - as logging.StreamHandler
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.acquire()
        try:
            self._write_pending()
        finally:
            self.release()

    def _write_pending(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        if self._pending:
            lines, self._pending, self._size = self._pending, [], 0
            self.stream.write("".join(lines))
        if self.stream and hasattr(self.stream, "flush"):
            self.stream.flush()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
