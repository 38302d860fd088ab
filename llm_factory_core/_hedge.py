"""Hedged stream attempts (``hedge: true`` on a deployment; off by default).

Once a stream attempt on a hedging deployment passes its learnt first-token limit (``_first_token``),
the plan's next deployment is started beside it instead of abandoning it, and whichever sends
content first is kept; the other is cancelled (its connection closed at once) and recorded as an
attempt, so logs and ``CallInfo.attempts`` show both. The slow attempt keeps its fixed
``first_token_timeout``. A cancelled attempt sent no content, so it reports no usage: a provider
that bills the prompt of a cancelled request bills it unseen.

asyncio only (a trio caller gets the plain failover); both attempts run as tasks of the caller's
loop for at most the time it takes the first content to arrive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import TYPE_CHECKING

from ._deployment import Deployment
from ._errors import ProviderError
from ._plan import Plan
from ._provider import Provider
from ._request import ChatRequest
from ._types import ChatCompletionChunk

if TYPE_CHECKING:
    from ._router import Router

__all__ = ["HedgeCancelled", "hedged_first_content"]

Opened = tuple[AsyncIterator[ChatCompletionChunk], list[ChatCompletionChunk]]


class HedgeCancelled(ProviderError):
    """The attempt that lost a hedge: recorded, never raised, no cooldown (nothing was wrong)."""

    retryable = False


async def hedged_first_content(
    router: Router,
    plan: Plan,
    first: Deployment,
    deployments: AsyncGenerator[Deployment, None],
    providers: Mapping[str, Provider],
    request: ChatRequest,
    loop: asyncio.AbstractEventLoop,
) -> tuple[Deployment, Opened, float] | None:
    """``Router._first_content`` for ``first``, hedged past its learnt limit with the plan's next
    deployment: the winner, its opened stream and when its attempt started; None when every
    attempt failed over (each recorded)."""
    started = time.monotonic()
    one = loop.create_task(router._first_content(plan, first, providers, request, loop))
    racers: dict[asyncio.Task[Opened | None], tuple[Deployment, float]] = {one: (first, started)}
    try:
        limit = router.first_token.limits.get(first.name)
        if limit is not None:
            await asyncio.wait({one}, timeout=limit)
        second = None
        if limit is not None and not one.done():
            plan.excluded.add(first.name)  # the plan's next is another deployment, not this one again
            second = await anext(deployments, None)
        if second is None:  # nothing to hedge with (yet): the plain attempt
            del racers[one]
            opened = await one
            return None if opened is None else (first, opened, started)
        two = loop.create_task(router._first_content(plan, second, providers, request, loop))
        racers[two] = (second, time.monotonic())
        entrants = dict(racers)
        pending = set(racers)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                del racers[task]
                opened = task.result()  # a request error or the deadline: raised, the other cancelled below
                if opened is None:
                    continue  # failed over (recorded): the other may still answer
                deployment, at = entrants[task]
                for loser, (other, _) in list(racers.items()):
                    del racers[loser]
                    await _cancel(loser, router, other)
                    plan.record(
                        other,
                        HedgeCancelled(
                            f"cancelled: the hedged attempt on {deployment.name} sent content first",
                            provider=other.provider_key,
                            deployment=other.name,
                        ),
                    )
                return deployment, opened, at
        return None
    finally:
        for task, (deployment, _) in racers.items():  # cancelled or failed: nothing may run on
            await _cancel(task, router, deployment)


async def _cancel(task: asyncio.Task[Opened | None], router: Router, deployment: Deployment) -> None:
    """Cancel a racer and wait for it; a stream it opened just before is closed."""
    task.cancel()
    try:
        opened = await task
    except (asyncio.CancelledError, Exception):
        return  # ``_first_content`` closed its stream and ended its in-flight count
    if opened is not None:  # it reached its first content just as it was cancelled
        from ._router import _close

        await _close(opened[0])
        router.health.end(deployment.name)  # handed over open: ending it is ours now
