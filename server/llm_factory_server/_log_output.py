"""Where the gateway's log lines go: stderr, with the request log's lines coalesced.

Python's stderr is line-buffered, so one access line per request is one ``write`` system call per
request, on the event loop's thread: under load that was about a tenth of a non-streamed request's
CPU. ``CoalescingStreamHandler`` keeps INFO lines written on the event loop for at most
``interval`` seconds (or ``max_bytes``) and writes them together, as nginx's ``access_log ...
buffer= flush=`` does. A warning or error, a line from any other thread, shutdown
(``logging.shutdown`` flushes every handler) and a full buffer write at once, so nothing that
explains a failure waits, and a clean exit loses nothing; a killed process loses at most the last
``interval`` of request lines.

``line_sink`` goes one step further for the request log: where its lines would reach exactly that
handler with ``LineFormatter`` and nothing else (the configuration ``llm-factory serve`` sets up),
a line is formatted and queued without a ``LogRecord`` and the logging machinery around it (a few
microseconds per request); anywhere else (a test's capture, a host app's handlers or filters) the
ordinary logging call is made.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TextIO

__all__ = ["CoalescingStreamHandler", "LineFormatter", "line_sink"]


class LineFormatter(logging.Formatter):
    """uvicorn's ``INFO:     message`` layout at a fraction of its formatter's cost (no record
    copy, no colour handling): the request log writes one line per request on the hot path."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname + ':':<9} {record.getMessage()}"
        if record.exc_info or record.stack_info:
            if record.exc_info and not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            line = "\n".join(
                filter(None, (line, record.exc_text, record.stack_info and self.formatStack(record.stack_info)))
            )
        return line


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

    def add_info_line(self, message: str) -> None:
        """What ``emit`` does with an INFO record of ``message`` formatted by ``LineFormatter``,
        from the event loop's thread, without the record (``line_sink``)."""
        line = "INFO:     " + message + self.terminator
        self.acquire()
        try:
            self._pending.append(line)
            self._size += len(line)
            if self._size >= self.max_bytes:
                self._write_pending()
            elif self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self.interval, self.flush)
        finally:
            self.release()

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


def line_sink(logger: logging.Logger) -> CoalescingStreamHandler | None:
    """The handler an INFO line of ``logger`` may be queued on directly (``add_info_line``): when
    its records would reach that one handler, with ``LineFormatter``, unfiltered, and nothing
    else. None otherwise: log it the ordinary way. Called per line: a dozen attribute reads."""
    parent = logger.parent
    if logger.handlers or logger.filters or not logger.propagate or parent is None or parent.propagate:
        return None
    handlers = parent.handlers
    if len(handlers) != 1 or parent.filters or logging.root.manager.disable >= logging.INFO:
        return None
    handler = handlers[0]
    if type(handler) is not CoalescingStreamHandler or handler.filters or handler.level > logging.INFO:
        return None
    return handler if type(handler.formatter) is LineFormatter else None
