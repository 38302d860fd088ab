"""``Deadline``: asyncio.timeout's semantics for a loop looked up once per call."""

from __future__ import annotations

import asyncio

import pytest

from llm_factory_core._deadline import Deadline, fail_after, running_loop

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
