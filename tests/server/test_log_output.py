"""``CoalescingStreamHandler``: the request log's INFO lines written together, nothing that explains
a failure held back, nothing lost at shutdown; ``line_sink``: those lines queued without a record
where ``llm-factory serve``'s handler is the only one to see them."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from llm_factory_server import ServerSettings, create_app
from llm_factory_server._log_output import CoalescingStreamHandler, LineFormatter, line_sink
from llm_factory_server._serve import log_config

from .helpers import Upstream, make_factory, serving


class CountingStream(io.StringIO):
    """Counts ``write`` calls: each is a system call on a real stderr."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, CountingStream, CoalescingStreamHandler]]:
    stream = CountingStream()
    handler = CoalescingStreamHandler(stream, interval=0.05)
    logger = logging.getLogger("tests.log_output")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream, handler
    logger.removeHandler(handler)
    logger.propagate = True


def test_request_lines_on_the_loop_are_written_together_within_the_interval(logged) -> None:
    logger, stream, _ = logged

    async def burst() -> None:
        for i in range(100):
            logger.info("request %d", i)
        assert stream.getvalue() == ""  # held, not lost
        await asyncio.sleep(0.15)

    asyncio.run(burst())
    assert stream.getvalue() == "".join(f"request {i}\n" for i in range(100))
    assert stream.writes == 1


def test_a_warning_is_written_at_once_after_the_lines_before_it(logged) -> None:
    logger, stream, _ = logged

    async def main() -> None:
        logger.info("request 1")
        logger.warning("upstream failed")
        assert stream.getvalue() == "request 1\nupstream failed\n"

    asyncio.run(main())


def test_lines_from_a_thread_without_a_loop_are_written_at_once(logged) -> None:
    logger, stream, _ = logged
    thread = threading.Thread(target=logger.info, args=("from a thread",))
    thread.start()
    thread.join()
    assert stream.getvalue() == "from a thread\n"


def test_a_full_buffer_is_written_without_waiting(logged) -> None:
    logger, stream, handler = logged
    handler.max_bytes = 100

    async def main() -> None:
        for _ in range(10):
            logger.info("x" * 30)
        assert stream.writes == 2 and stream.getvalue().count("x" * 30) == 8  # 4 lines pass 100 bytes

    asyncio.run(main())


def test_flush_at_shutdown_loses_nothing(logged) -> None:
    logger, stream, handler = logged

    async def main() -> None:
        logger.info("last request")

    asyncio.run(main())  # the loop is gone before its timer fired
    handler.flush()  # what logging.shutdown() does at exit
    assert stream.getvalue() == "last request\n"


def test_the_gateway_logs_through_it() -> None:
    handler = log_config("info")["handlers"]["llm_factory"]
    assert handler["class"] == "llm_factory_server._log_output.CoalescingStreamHandler"


# -- line_sink: the request log's lines without a LogRecord where serve's handler is all there is --


@pytest.fixture
def served_logging() -> Iterator[tuple[logging.Logger, CountingStream, CoalescingStreamHandler]]:
    """``llm_factory_server``'s logger as ``llm-factory serve`` configures it (``log_config``).
    Tests call ``_only`` first: pytest's log capture adds its handlers to it after set-up."""
    parent = logging.getLogger("llm_factory_server")
    saved = parent.handlers[:], parent.propagate, parent.level
    stream = CountingStream()
    handler = CoalescingStreamHandler(stream, interval=0.05)
    handler.setFormatter(LineFormatter())
    parent.handlers = [handler]
    parent.propagate = False
    parent.setLevel(logging.INFO)
    yield logging.getLogger("llm_factory_server.access"), stream, handler
    parent.handlers, parent.propagate = saved[0], saved[1]
    parent.setLevel(saved[2])


def test_line_sink_is_the_handler_only_when_nothing_else_would_see_the_record(served_logging) -> None:
    access, _, handler = served_logging
    _only(handler)
    assert line_sink(access) is handler
    other = logging.StreamHandler(io.StringIO())
    changes = [
        (lambda: access.addFilter(_drop), lambda: access.removeFilter(_drop)),
        (lambda: access.addHandler(other), lambda: access.removeHandler(other)),
        (lambda: access.parent.addHandler(other), lambda: access.parent.removeHandler(other)),  # type: ignore[union-attr]
        (lambda: handler.addFilter(_drop), lambda: handler.removeFilter(_drop)),
        (lambda: handler.setFormatter(logging.Formatter()), lambda: handler.setFormatter(LineFormatter())),
        (lambda: setattr(access.parent, "propagate", True), lambda: setattr(access.parent, "propagate", False)),
    ]
    for change, undo in changes:
        change()
        assert line_sink(access) is None
        undo()
        assert line_sink(access) is handler


def _only(handler: CoalescingStreamHandler) -> None:
    logging.getLogger("llm_factory_server").handlers = [handler]


def _drop(record: logging.LogRecord) -> bool:
    return False


def test_a_queued_line_is_the_line_logging_writes(served_logging) -> None:
    access, stream, handler = served_logging
    _only(handler)

    async def both() -> None:
        access.info("%s model=%r tokens=%s", "rid-1", "gpt-4o", "9/2")
        handler.add_info_line("rid-1 model=" + repr("gpt-4o") + " tokens=9/2")
        await asyncio.sleep(0.1)

    asyncio.run(both())
    first, second = stream.getvalue().splitlines()
    assert first == second == "INFO:     rid-1 model='gpt-4o' tokens=9/2" and stream.writes == 1


def test_the_gateway_queues_its_request_lines_and_a_filter_still_sees_records(served_logging) -> None:
    access, stream, handler = served_logging
    _only(handler)
    seen: list[str] = []

    def keep(record: logging.LogRecord) -> bool:
        seen.append(record.getMessage())
        return True

    factory = make_factory(Upstream())
    try:
        with serving(create_app(factory, settings=ServerSettings())) as server:
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
            assert httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=10).status_code == 200
            deadline = time.monotonic() + 5
            while "status=200" not in "".join(handler._pending) + stream.getvalue():  # logged after the reply
                assert time.monotonic() < deadline
                time.sleep(0.01)
            access.addFilter(keep)  # a host app's filter: the ordinary call, with its record
            try:
                assert httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=10).status_code == 200
                while not seen:
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
            finally:
                access.removeFilter(keep)
            time.sleep(0.2)  # the handler's interval: both lines written
    finally:
        factory.close()
    lines = [line for line in stream.getvalue().splitlines() if "status=" in line]  # not the start-up's
    assert len(lines) == 2 and all(line.startswith("INFO:     ") and "status=200" in line for line in lines), lines
    assert len(seen) == 1 and lines[1] == "INFO:     " + seen[0]
