"""Everything an upstream sends is bounded (issue 20, "everything bounded, everything linear"), on
both HTTP transports, over real sockets: compression bombs, undecodable encodings, oversized
replies and error bodies, endless SSE lines and events, content-less chunks before a stream's first
content. Each makes the attempt fail over with a retryable error naming the limit to raise; the
gateway's memory stays near the configured caps."""

from __future__ import annotations

import contextlib
import itertools
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

from llm_factory_core import (
    AllDeploymentsFailedError,
    LLMFactory,
    ModelConfig,
    ServerError,
    UpstreamConnectionError,
    UpstreamTimeoutError,
)
from llm_factory_core._provider import Limits
from llm_factory_core._sse import _split_lines
from llm_factory_core._transports import new_client
from llm_factory_core.providers import Provider, ProviderSettings
from llm_factory_core.testing import Fault, FaultyUpstream
from tests.core.raw_upstream import (
    JSON,
    SSE,
    RawUpstream,
    completion,
    gzip_bomb,
    hang,
    sse_chunk,
    stream_body,
    whole,
)

pytestmark = pytest.mark.anyio
pytest.importorskip("aiohttp")

TEXT = "the good upstream answered"
MiB = 1 << 20
BOMB = gzip_bomb(128 * MiB)  # 128 MiB of zeros in ~130 kB
NEWLINE_BOMB = gzip_bomb(128 * MiB, b"\n")  # the same as blank lines: each line is tiny
SMALL = {"max_response_bytes": 4 * MiB, "max_event_bytes": 1 * MiB, "max_uncommitted_bytes": 64 * 1024}


@pytest.fixture
def good() -> Iterator[FaultyUpstream]:
    with FaultyUpstream({"m": Fault.ok(TEXT)}) as server:
        yield server


def hostile_first(hostile: RawUpstream, good: FaultyUpstream, **limits: Any) -> LLMFactory:
    """The hostile upstream is preferred; the good one is the standby it must fail over to."""
    configs = [
        ModelConfig(provider="openai", model_name="m", name="hostile", api_base=hostile.url,
                    api_key="sk-bounds-test-0001", first_token_timeout=20, timeout=30),
        ModelConfig(provider="openai", model_name="m", name="good", api_base=good.base_url,
                    api_key="sk-bounds-test-0002", priority=1),
    ]  # fmt: skip
    return LLMFactory(configs, transport=limits.pop("transport"), num_retries=0, **limits)


async def answer(f: LLMFactory, mode: str) -> str:
    if mode == "chat":
        return (await f.chat_async("hi")).choices[0].message.content or ""
    parts: list[str] = []
    async for chunk in f.stream_async("hi"):
        parts.extend(c.delta.content or "" for c in chunk.choices)
    return "".join(parts)


def hostile_error(f: LLMFactory) -> str:
    status = {s.name: s for s in f.status()}["hostile"]
    assert status.state == "cooldown" and status.last_error, status  # blamed on the upstream, failed over
    return status.last_error


async def only_error(hostile: RawUpstream, mode: str, transport: str, **limits: Any) -> Exception:
    """The error of one attempt against the hostile upstream alone."""
    config = ModelConfig(provider="openai", model_name="m", api_base=hostile.url, api_key="sk-bounds-test-0001",
                         first_token_timeout=20, timeout=30)  # fmt: skip
    async with LLMFactory(config, transport=transport, num_retries=0, **limits) as f:
        with pytest.raises(AllDeploymentsFailedError) as info:
            await answer(f, mode)
    return info.value.attempts[0].error


def pieces(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    return (body[i : i + size] for i in range(0, len(body), size))


# -- compression ------------------------------------------------------------------------------


def test_we_ask_for_uncompressed_replies() -> None:
    from llm_factory_core._provider import _json_headers

    assert _json_headers({}, None)["accept-encoding"] == "identity"


@pytest.mark.parametrize("mode", ["chat", "stream"])
async def test_a_gzip_bomb_fails_over_with_memory_bounded(good: FaultyUpstream, http_transport: str, mode: str) -> None:
    # 1 MB of gzip used to become 2.1 GB of gateway memory: aiohttp (and httpx) inflated it whole.
    kind = JSON if mode == "chat" else SSE
    with RawUpstream(stream_body(lambda: pieces(BOMB), headers=(*kind, ("content-encoding", "gzip")))) as hostile:
        async with hostile_first(hostile, good, transport=http_transport, **SMALL) as f:
            tracemalloc.start()
            try:
                assert await answer(f, mode) == TEXT
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            error = hostile_error(f)
    assert peak < 32 * MiB, f"peak {peak / MiB:.0f} MiB"
    setting = "max_response_bytes=4194304" if mode == "chat" else "max_event_bytes=1048576"  # a line of zeros
    assert setting in error and "raise it" in error


async def test_a_gzip_bomb_of_blank_lines_stops_at_the_stream_cap(good: FaultyUpstream, http_transport: str) -> None:
    # Every line is short, so the line cap never fires: the inflated total is what is capped.
    headers = (*SSE, ("content-encoding", "gzip"))
    with RawUpstream(stream_body(lambda: pieces(NEWLINE_BOMB), headers=headers)) as hostile:
        error = await only_error(hostile, "stream", http_transport, **SMALL)
    assert isinstance(error, ServerError) and error.retryable
    assert "decompressed" in str(error) and "max_response_bytes=4194304" in str(error)


async def test_a_compressed_reply_within_the_limits_is_decoded(http_transport: str) -> None:
    # An upstream may compress though we asked it not to: a reasonable reply still works.
    import gzip
    import zlib

    bodies = [("gzip", gzip.compress(completion(TEXT))), ("deflate", zlib.compress(completion(TEXT))),
              ("deflate", zlib.compress(completion(TEXT), wbits=-15))]  # fmt: skip
    for encoding, body in bodies:
        with RawUpstream(whole(body, headers=(*JSON, ("content-encoding", encoding)))) as up:
            config = ModelConfig(provider="openai", model_name="m", api_base=up.url, api_key="sk-bounds-test-0001")
            async with LLMFactory(config, transport=http_transport, num_retries=0) as f:
                assert await answer(f, "chat") == TEXT, encoding
    stream = gzip.compress(sse_chunk({"role": "assistant", "content": TEXT}, "stop") + b"data: [DONE]\n\n")
    with RawUpstream(whole(stream, headers=(*SSE, ("content-encoding", "gzip")))) as up:
        config = ModelConfig(provider="openai", model_name="m", api_base=up.url, api_key="sk-bounds-test-0001")
        async with LLMFactory(config, transport=http_transport, num_retries=0) as f:
            assert await answer(f, "stream") == TEXT
    assert up.requests[0].headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("mode", ["chat", "stream"])
@pytest.mark.parametrize("encoding", ["br", "gzip"])
async def test_an_undecodable_body_fails_over(
    good: FaultyUpstream, http_transport: str, mode: str, encoding: str
) -> None:
    # An unknown Content-Encoding (or a corrupt gzip body) was a 500 on the httpx transport.
    kind = JSON if mode == "chat" else SSE
    respond = whole(b"\x8b\x00 not what it says " * 50, headers=(*kind, ("content-encoding", encoding)))
    with RawUpstream(respond) as hostile:
        async with hostile_first(hostile, good, transport=http_transport) as f:
            assert await answer(f, mode) == TEXT
            error = hostile_error(f)
        lone = await only_error(hostile, mode, http_transport)
    assert isinstance(lone, (ServerError, UpstreamConnectionError)) and lone.retryable
    assert ("Content-Encoding 'br'" if encoding == "br" else "corrupt gzip") in error


# -- sizes ------------------------------------------------------------------------------------


async def test_a_reply_over_max_response_bytes_fails_over(good: FaultyUpstream, http_transport: str) -> None:
    big = completion("x" * (5 * MiB))
    with RawUpstream(stream_body(lambda: pieces(big), headers=JSON)) as hostile:
        async with hostile_first(hostile, good, transport=http_transport, **SMALL) as f:
            assert await answer(f, "chat") == TEXT
            error = hostile_error(f)
        lone = await only_error(hostile, "chat", http_transport, **SMALL)
    assert "max_response_bytes=4194304 (4 MiB)" in error
    assert isinstance(lone, ServerError) and lone.retryable and lone.http_status == 502


@pytest.mark.parametrize("mode", ["chat", "stream"])
async def test_an_error_body_is_read_up_to_its_cap_then_dropped(
    good: FaultyUpstream, http_transport: str, mode: str
) -> None:
    # 64 MiB of error text: we read the first max_error_body_bytes (1 MiB by default) and close.
    def endless() -> Iterator[bytes]:
        return itertools.repeat(b'{"error": "' + b"e" * 65536, 1024)

    with RawUpstream(stream_body(endless, status=500, headers=JSON)) as hostile:
        async with hostile_first(hostile, good, transport=http_transport) as f:
            assert await answer(f, mode) == TEXT
            error = hostile_error(f)
    assert hostile.sent < 24 * MiB, f"the upstream got {hostile.sent / MiB:.0f} MiB out"  # socket buffers aside
    assert len(error) < 4000  # cut before it reaches status pages and logs


async def test_an_endless_sse_line_fails_over(good: FaultyUpstream, http_transport: str) -> None:
    # A line that never ends used to be held (and re-scanned on every chunk) without limit.
    def endless() -> Iterator[bytes]:
        yield b"data: "
        yield from itertools.repeat(b"x" * 65536, 4096)  # 256 MiB, no newline

    with RawUpstream(stream_body(endless, headers=SSE)) as hostile:
        async with hostile_first(hostile, good, transport=http_transport, **SMALL) as f:
            assert await answer(f, "stream") == TEXT
            error = hostile_error(f)
    assert "a line of the upstream stream exceeded the limit max_event_bytes=1048576 (1 MiB)" in error
    assert hostile.sent < 64 * MiB


async def test_an_endless_sse_event_fails_over(good: FaultyUpstream, http_transport: str) -> None:
    # Short lines, but one event that never dispatches (no blank line): its data is what grows.
    def endless() -> Iterator[bytes]:
        return itertools.repeat(b"data: " + b"x" * 1000 + b"\n", 200_000)

    with RawUpstream(stream_body(endless, headers=SSE)) as hostile:
        error = await only_error(hostile, "stream", http_transport, **SMALL)
    assert isinstance(error, ServerError) and "an event of the upstream stream" in str(error)
    assert "max_event_bytes=1048576" in str(error)


async def test_content_less_chunks_before_the_first_content_are_bounded(
    good: FaultyUpstream, http_transport: str
) -> None:
    # The router holds chunks until the first content (to fail over invisibly); 300 MB of
    # content-less chunks took the gateway to 4.3 GB.
    def endless() -> Iterator[bytes]:
        return itertools.repeat(sse_chunk({"role": "assistant"}), 2_000_000)

    with RawUpstream(stream_body(endless, headers=SSE)) as hostile:
        async with hostile_first(hostile, good, transport=http_transport, **SMALL) as f:
            assert await answer(f, "stream") == TEXT
            error = hostile_error(f)
        lone = await only_error(hostile, "stream", http_transport, **SMALL)
    assert "max_uncommitted_bytes=65536 (64 KiB)" in error
    assert isinstance(lone, ServerError) and lone.retryable


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_a_long_line_in_small_chunks_is_split_in_linear_time() -> None:
    # 12 MiB in 512-byte chunks: the old splitter re-joined the held line with every chunk and
    # scanned it again (~150 GB of copying here, minutes; a 200 MB line cost 53 s of CPU).
    line = b"x" * (12 << 20)
    parts = [line[i : i + 512] for i in range(0, len(line), 512)] + [b"\n", b"data: y\n"]
    lines = [x async for x in _split_lines(_chunks(parts))]
    assert [len(x) for x in lines] == [len(line), 7]


# -- one pool, many upstreams: one hanging model must not starve the others -----------------------


async def test_a_hanging_upstream_holds_at_most_its_share_of_the_pool_on_aiohttp() -> None:
    with RawUpstream(hang) as slow, FaultyUpstream({"m": Fault.ok(TEXT)}) as fast:
        configs = [
            ModelConfig(provider="openai", model_name="slow", api_base=slow.url, api_key="sk-pool-test-0001",
                        first_token_timeout=10, timeout=10, connect_timeout=0.3),
            ModelConfig(provider="openai", model_name="m", api_base=fast.base_url, api_key="sk-pool-test-0002"),
        ]  # fmt: skip
        # The wait for the pool is bounded by pool_timeout (through a proxy, where aiohttp's session
        # carries the call, by pool_timeout + connect_timeout).
        limits: dict[str, Any] = {"max_connections": 3, "max_connections_per_host": 2, "pool_timeout": 0.3}
        async with LLMFactory(configs, transport="aiohttp", num_retries=0, **limits) as f:
            outcomes: list[BaseException | None] = []

            async def hung() -> None:
                try:
                    await f.chat_async("hi", model="slow")
                    outcomes.append(None)
                except AllDeploymentsFailedError as exc:
                    outcomes.append(exc.attempts[0].error)

            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(hung)
                with anyio.fail_after(5):
                    while slow.open_connections < 2 or not outcomes:
                        await anyio.sleep(0.02)
                assert slow.open_connections == 2  # its cap; the third waited for the pool, then failed over
                assert isinstance(outcomes[0], UpstreamTimeoutError) and outcomes[0].silent
                with anyio.fail_after(5):  # the third connection of the pool is still free
                    assert (await f.chat_async("hi", model="m")).choices[0].message.content == TEXT
                tg.cancel_scope.cancel()


async def test_a_full_httpx_pool_fails_over_after_the_pool_timeout() -> None:
    # httpx's pool has no per-host cap: there the pool-wait timeout is what bounds the damage.
    with RawUpstream(hang) as slow, FaultyUpstream({"m": Fault.ok(TEXT)}) as fast:
        configs = [
            ModelConfig(provider="openai", model_name="slow", api_base=slow.url, api_key="sk-pool-test-0001",
                        first_token_timeout=10, timeout=10),
            ModelConfig(provider="openai", model_name="m", api_base=fast.base_url, api_key="sk-pool-test-0002",
                        first_token_timeout=10, timeout=10),
        ]  # fmt: skip
        f = LLMFactory(configs, transport="httpx", num_retries=0, max_connections=2, pool_timeout=0.3)
        async with f, anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(lambda: f.chat_async("hi", model="slow"))
            with anyio.fail_after(5):
                while slow.open_connections < 2:
                    await anyio.sleep(0.02)
            with anyio.fail_after(5), pytest.raises(AllDeploymentsFailedError) as info:
                await f.chat_async("hi", model="m")
            tg.cancel_scope.cancel()
    error = info.value.attempts[0].error
    assert isinstance(error, UpstreamTimeoutError) and error.retryable
    assert "pool_timeout=0.3" in str(error) and "max_connections=2" in str(error)


# -- plugins with their own framing -----------------------------------------------------------


class _Lines(Provider):
    key = "lines-test"

    async def lines(self, url: str) -> list[str]:
        async with self.open_stream(url, {}) as response:
            return [line async for line in response.aiter_lines()]

    async def octets(self, url: str) -> int:
        async with self.open_stream(url, {}) as response:
            return sum([len(b) async for b in response.aiter_bytes()])


@contextlib.asynccontextmanager
async def _provider(transport: str) -> AsyncIterator[_Lines]:
    client = new_client(transport)
    try:
        yield _Lines(ProviderSettings(model="m"), client=client, name="lines", limits=Limits(**SMALL))
    finally:
        await client.aclose()


async def test_plugins_reading_lines_or_bytes_get_the_same_bounds(http_transport: str) -> None:
    # Gemini reads ``aiter_lines``, Bedrock ``aiter_bytes``: they get decoded, capped bodies too.
    def long_line() -> Iterator[bytes]:
        yield b"ok\n"
        yield from itertools.repeat(b"y" * 65536, 1024)

    async with _provider(http_transport) as provider:
        with RawUpstream(stream_body(long_line, headers=SSE)) as up, pytest.raises(ServerError, match="max_event_"):
            await provider.lines(up.url)
        headers = (("content-type", "application/vnd.amazon.eventstream"), ("content-encoding", "gzip"))
        bomb = stream_body(lambda: pieces(BOMB), headers=headers)
        with RawUpstream(bomb) as up, pytest.raises(ServerError, match="max_response_bytes=4194304"):
            await provider.octets(up.url)
        with RawUpstream(whole(b"a\r\nb\rc\n", headers=(*SSE, ("content-encoding", "identity")))) as up:
            assert await provider.lines(up.url) == ["a", "b", "c"]


async def test_limits_are_router_settings_with_clear_errors() -> None:
    from llm_factory_core import ConfigurationError

    config = ModelConfig(provider="openai", model_name="m", api_key="sk-bounds-test-0001")
    f = LLMFactory(config, max_event_bytes=2 * MiB, pool_timeout=5)
    assert f.config.router.limits() == Limits(max_event_bytes=2 * MiB, pool_timeout=5)
    with pytest.raises(ConfigurationError, match="max_response_bytes"):
        LLMFactory(config, max_response_bytes=0)
    async with f:
        provider = next(iter(f.providers().values()))
        assert provider.limits.max_event_bytes == 2 * MiB
