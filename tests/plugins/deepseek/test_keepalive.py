"""Keep-alive comments while DeepSeek is busy, on a real clock and a real socket: they keep a
stream alive past ``chunk_timeout`` (the transport's read timeout) but never count as its first
token; true silence still times out."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from llm_factory_core import (
    AllDeploymentsFailedError,
    LLMFactory,
    ModelConfig,
    StreamInterruptedError,
    UpstreamTimeoutError,
)
from llm_factory_core.testing import serve_handler

from .fake_deepseek import FakeDeepSeek, Reply

KEY = "sk-deepseek-timing-key-0001"
CHUNK_TIMEOUT = 0.3


@contextlib.asynccontextmanager
async def factory(fake: FakeDeepSeek, first_token_timeout: float = 5.0) -> AsyncIterator[LLMFactory]:
    with serve_handler(fake) as base:
        config = ModelConfig(
            provider="deepseek",
            model_name="deepseek-chat",
            api_key=KEY,
            api_base=base,
            chunk_timeout=CHUNK_TIMEOUT,
            first_token_timeout=first_token_timeout,
        )
        async with LLMFactory(config, num_retries=0) as f:
            yield f


@pytest.mark.anyio
async def test_keep_alives_for_longer_than_chunk_timeout_keep_the_stream_alive() -> None:
    # Eight comments 0.1 s apart: 0.8 s before the first chunk, each gap well inside 0.3 s.
    fake = FakeDeepSeek(keys=(KEY,)).add(Reply(text="finally here", keepalives=8, keepalive_interval=0.1))
    async with factory(fake) as f:
        chunks = [c async for c in f.stream_async("Hi")]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "finally here"


@pytest.mark.anyio
async def test_silence_longer_than_chunk_timeout_before_the_first_chunk_times_out() -> None:
    fake = FakeDeepSeek(keys=(KEY,)).add(Reply(stall=(0, 1.0)))
    async with factory(fake) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            async for _ in f.stream_async("Hi"):
                pass
    assert isinstance(info.value.last_error, UpstreamTimeoutError)


@pytest.mark.anyio
async def test_silence_after_keep_alives_times_out() -> None:
    fake = FakeDeepSeek(keys=(KEY,)).add(Reply(keepalives=3, keepalive_interval=0.1, stall=(0, 1.0)))
    async with factory(fake) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            async for _ in f.stream_async("Hi"):
                pass
    assert isinstance(info.value.last_error, UpstreamTimeoutError)


@pytest.mark.anyio
async def test_silence_after_the_first_token_ends_the_stream_with_an_error() -> None:
    fake = FakeDeepSeek(keys=(KEY,)).add(Reply(text="one two three", stall=(2, 1.0)))
    seen: list[str] = []
    async with factory(fake) as f:
        with pytest.raises(StreamInterruptedError, match="UpstreamTimeoutError"):
            async for chunk in f.stream_async("Hi"):
                seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "one "


@pytest.mark.anyio
async def test_keep_alives_are_not_a_first_token() -> None:
    # Comments every 0.05 s keep the connection alive for 1.5 s, past first_token_timeout.
    fake = FakeDeepSeek(keys=(KEY,)).add(Reply(keepalives=30, keepalive_interval=0.05))
    async with factory(fake, first_token_timeout=0.5) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            async for _ in f.stream_async("Hi"):
                pass
    error = info.value.last_error
    assert isinstance(error, UpstreamTimeoutError) and "first token" in error.message
