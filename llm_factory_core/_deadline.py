"""Timeouts for the hot path: one per attempt and one per stream chunk.

``asyncio.timeout`` looks the running loop up three times on entry, and on Python 3.11 every
lookup is a ``getpid`` system call (its fork check): a dozen system calls per proxied request
for nothing. ``Deadline`` is the same mechanism (a timer that cancels the task, turned into
``TimeoutError`` on the way out, outside cancellations left alone) for a loop the caller looked
up once per call. On other event loops (trio through anyio) ``anyio.fail_after`` is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any

import anyio

__all__ = ["Deadline", "StreamDeadline", "fail_after", "running_loop"]


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or None under another async library."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def fail_after(seconds: float, loop: asyncio.AbstractEventLoop | None) -> AbstractAsyncContextManager[Any]:
    """``anyio.fail_after(seconds)``; ``loop`` is ``running_loop()``, looked up once per call."""
    if loop is None:
        return _anyio_fail_after(seconds)
    task = asyncio.current_task(loop)
    if task is None:  # pragma: no cover - a coroutine on an asyncio loop always runs in a task
        raise RuntimeError("fail_after needs a running task")
    return Deadline(loop, task, loop.time() + seconds)


class Deadline:
    """Cancel ``task`` at loop time ``when``; that cancellation leaves the block as ``TimeoutError``."""

    __slots__ = ("_cancelling", "_expired", "_handle", "_task")

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], when: float) -> None:
        self._task = task
        self._expired = False
        self._cancelling = task.cancelling()
        self._handle = loop.call_at(when, self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    async def __aenter__(self) -> Deadline:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._handle.cancel()
        # As asyncio.Timeout: our cancellation is taken back (also when the block finished just
        # as the timer fired); it becomes TimeoutError only if nobody else cancelled the task too.
        if self._expired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc


class StreamDeadline:
    """One timer for every read of a committed stream, where ``Deadline`` per read armed and
    cancelled a timer per chunk (a tenth of the router's CPU per forwarded chunk).

    The task is cancelled only while it waits in ``read`` (the caller's own work between reads,
    such as writing to a slow client, is never interrupted, as with a ``Deadline`` per read); a
    deadline that passes between reads is noticed by the next ``read`` before it waits."""

    __slots__ = ("_cancelling", "_expired", "_fired", "_handle", "_loop", "_reading", "_task")

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], when: float) -> None:
        self._loop = loop
        self._task = task
        self._expired = self._fired = self._reading = False
        self._cancelling = task.cancelling()
        self._handle = loop.call_at(when, self._expire)

    def _expire(self) -> None:
        self._expired = True
        if self._reading:
            self._fired = True
            self._task.cancel()

    async def read(self, iterator: AsyncIterator[Any]) -> Any:
        """``await iterator.__anext__()``, or ``TimeoutError`` once the deadline has passed."""
        if self._expired:
            raise TimeoutError
        task = asyncio.current_task(self._loop)
        if task is not self._task and task is not None:  # iterated on from another task now
            self._task, self._cancelling = task, task.cancelling()
        self._reading = True
        try:
            return await iterator.__anext__()
        except asyncio.CancelledError:
            if self._fired and self._task.uncancel() <= self._cancelling:
                raise TimeoutError from None
            raise
        finally:
            self._reading = False

    def cancel(self) -> None:
        self._handle.cancel()


@asynccontextmanager
async def _anyio_fail_after(seconds: float) -> AsyncIterator[None]:
    with anyio.fail_after(seconds):
        yield
