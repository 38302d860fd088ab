"""``CoalescingStreamHandler``: the request log's INFO lines written together, nothing that explains
a failure held back, nothing lost at shutdown."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import Iterator

import pytest

from llm_factory_server._log_output import CoalescingStreamHandler
from llm_factory_server._serve import log_config


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
