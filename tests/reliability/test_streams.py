"""The streaming contract under faults: before the first content any failure fails over; after it
a cut or a stall is an explicit StreamInterruptedError, never a silent success. One malformed
event is skipped; a stream that ends after its finish reason without ``[DONE]`` is complete."""

from __future__ import annotations

import time

import pytest

from llm_factory_core import StreamInterruptedError
from llm_factory_core.testing import Fault, FaultyUpstream

from .conftest import Outcome, ask, assert_answered_by, expected_text, make_factory

pytestmark = pytest.mark.anyio


def words(model: str, n: int) -> str:
    return "".join(expected_text(model).split(" ")[i] + " " for i in range(n))


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_a_stream_cut_after_the_first_content_is_an_explicit_error(upstream: FaultyUpstream, reset: bool) -> None:
    upstream.set_rule("primary", Fault.cut(after_tokens=3, reset=reset))
    out = Outcome()
    async with make_factory(upstream.base_url) as factory:
        with pytest.raises(StreamInterruptedError) as info:
            await ask(factory, "stream", into=out)
    assert out.text == words("primary", 3)  # what came before the cut, and then an error
    assert out.finish_reason is None and out.usage is None
    assert out.deployment == "primary" and info.value.deployment == "primary"
    assert upstream.count("primary") == 1 and upstream.count("backup") == 0  # no silent failover


async def test_a_stream_stalled_after_the_first_content_is_an_explicit_error(upstream: FaultyUpstream) -> None:
    upstream.set_rule("primary", Fault.stall(after_tokens=2))
    out = Outcome()
    deadline = 5.0
    async with make_factory(upstream.base_url) as factory:
        started = time.monotonic()
        with pytest.raises(StreamInterruptedError) as info:
            await ask(factory, "stream", into=out, timeout=deadline)
        elapsed = time.monotonic() - started
    assert out.text == words("primary", 2)
    assert "timed out" in str(info.value) or "Timeout" in str(info.value)
    assert elapsed < deadline  # ended by the chunk limit, not by the deadline
    assert upstream.count("backup") == 0


async def test_a_stall_past_the_call_deadline_is_an_explicit_error(upstream: FaultyUpstream) -> None:
    upstream.set_rule("primary", Fault.stall(after_tokens=2))
    out = Outcome()
    limits = {"first_token_timeout": 30.0, "chunk_timeout": 30.0, "timeout": 30.0}
    async with make_factory(upstream.base_url, timeouts=limits) as factory:
        started = time.monotonic()
        with pytest.raises(StreamInterruptedError):
            await ask(factory, "stream", into=out, timeout=0.8)
        elapsed = time.monotonic() - started
    assert out.text == words("primary", 2)
    assert elapsed < 0.8 + 1.0


async def test_a_cut_json_reply_is_never_a_truncated_success(upstream: FaultyUpstream) -> None:
    upstream.set_rule("primary", Fault.cut(after_tokens=3))
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, "chat")
    assert_answered_by(out, "backup")
    assert upstream.count("primary", fault="cut") == 2  # a blip retried once, then an outage: the backup


@pytest.mark.parametrize("fault", [Fault.cut(after_tokens=0), Fault.stall(after_tokens=0)], ids=["cut", "stall"])
async def test_a_failure_before_the_first_content_fails_over(upstream: FaultyUpstream, fault: Fault) -> None:
    upstream.set_rule("primary", fault)  # the role chunk arrives, then nothing useful
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, "stream")
    assert_answered_by(out, "backup")
    assert 1 <= upstream.count("primary") <= 3


async def test_one_malformed_event_is_skipped(upstream: FaultyUpstream) -> None:
    upstream.set_rule("primary", Fault.malformed_event(after_tokens=2))
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, "stream")
    assert_answered_by(out, "primary")
    assert upstream.count("primary") == 1


async def test_a_malformed_first_event_is_skipped_too(upstream: FaultyUpstream) -> None:
    upstream.set_rule("primary", Fault.malformed_event(after_tokens=0))
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, "stream")
    assert_answered_by(out, "primary")


async def test_a_stream_without_done_after_its_finish_reason_is_complete(upstream: FaultyUpstream) -> None:
    upstream.set_rule("primary", Fault.no_done())
    async with make_factory(upstream.base_url) as factory:
        out = await ask(factory, "stream")
        [status] = [s for s in factory.status() if s.name == "primary"]
    assert_answered_by(out, "primary")
    assert upstream.count("primary") == 1  # complete: not retried
    assert status.failures == 0 and status.successes == 1


def test_the_sync_stream_raises_on_a_cut_too() -> None:
    with FaultyUpstream({"primary": Fault.cut(after_tokens=2)}) as upstream, make_factory(upstream.base_url) as factory:
        pieces: list[str] = []
        with pytest.raises(StreamInterruptedError), factory.stream("hi", model="primary") as stream:
            for chunk in stream:
                pieces += [c.delta.content or "" for c in chunk.choices]
        assert "".join(pieces) == words("primary", 2)
        assert upstream.count("backup") == 0
