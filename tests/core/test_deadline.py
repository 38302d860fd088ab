"""``Deadline``: asyncio.timeout's semantics for a loop looked up once per call."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llm_factory_core._deadline import Deadline, StreamDeadline, fail_after, running_loop

pytestmark = pytest.mark.anyio


async def test_an_expired_deadline_is_a_timeout_error_and_leaves_no_cancellation_behind() -> None:
    loop = running_loop()
    with pytest.raises(TimeoutError):
        async with fail_after(0.01, loop):
            await asyncio.sleep(5)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # nothing pending: this await is not cancelled


async def test_a_block_that_finishes_in_time_is_untouched() -> None:
    loop = running_loop()
    async with fail_after(5, loop):
        await asyncio.sleep(0)
    await asyncio.sleep(0.02)  # the timer was cancelled: no late cancellation arrives


async def test_a_timer_that_fires_as_the_block_ends_is_taken_back() -> None:
    loop = running_loop()
    assert loop is not None
    async with fail_after(0, loop):
        # The timer fires during this busy stretch but the block never awaits again.
        deadline = loop.time() + 0.01
        while loop.time() < deadline:
            pass
        await asyncio.sleep(0)  # the task resumes in the iteration that has the timer due
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # no cancellation left over for a later await


async def test_an_outside_cancellation_stays_a_cancellation() -> None:
    loop = running_loop()

    async def guarded() -> None:
        async with fail_after(5, loop):
            await asyncio.sleep(5)

    task = asyncio.ensure_future(guarded())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancellation_racing_the_timer_is_not_swallowed() -> None:
    loop = running_loop()
    assert loop is not None

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        when = loop.time() + 0.01
        async with Deadline(loop, task, when):
            loop.call_at(when, task.cancel)  # someone else cancels in the same loop iteration
            await asyncio.sleep(5)

    with pytest.raises(asyncio.CancelledError):
        await asyncio.ensure_future(guarded())


async def test_nested_deadlines_report_the_inner_one() -> None:
    loop = running_loop()
    async with fail_after(5, loop):
        with pytest.raises(TimeoutError):
            async with fail_after(0.01, loop):
                await asyncio.sleep(5)
        await asyncio.sleep(0)  # the outer block goes on


def test_without_asyncio_anyio_does_the_work() -> None:
    import anyio

    async def main() -> None:
        with pytest.raises(TimeoutError):
            async with fail_after(0.01, None):
                await anyio.sleep(5)

    anyio.run(main)


# -- StreamDeadline: one timer for every read of a committed stream ---------------------------------


async def _ticks(delay: float, count: int = 1000) -> Any:
    for i in range(count):
        await asyncio.sleep(delay)
        yield i


def _stream_deadline(seconds: float) -> StreamDeadline:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    return StreamDeadline(loop, task, loop.time() + seconds)


async def test_a_stream_deadline_ends_a_read_that_waits_past_it() -> None:
    deadline = _stream_deadline(0.05)
    items = _ticks(0.01)
    got = [await deadline.read(items) for _ in range(3)]
    assert got == [0, 1, 2]  # reads in time are untouched
    with pytest.raises(TimeoutError):
        while True:
            await deadline.read(items)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # no cancellation left over


async def test_work_between_reads_is_never_interrupted_and_the_next_read_times_out() -> None:
    deadline = _stream_deadline(0.02)
    items = _ticks(0)
    assert await deadline.read(items) == 0
    await asyncio.sleep(0.05)  # the caller's own work (a slow client) outlives the deadline
    with pytest.raises(TimeoutError):
        await deadline.read(items)  # noticed before waiting
    deadline.cancel()


async def test_an_outside_cancellation_during_a_read_stays_a_cancellation() -> None:
    async def reader() -> None:
        deadline = _stream_deadline(5)
        await deadline.read(_ticks(5))

    task = asyncio.ensure_future(reader())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_stream_read_from_another_task_cancels_that_task_only() -> None:
    deadline = _stream_deadline(0.03)
    items = _ticks(0.5)
    with pytest.raises(TimeoutError):
        await asyncio.ensure_future(deadline.read(items))  # another task reads at the deadline
    await asyncio.sleep(0.05)  # the task that made the deadline was not cancelled
