"""``decoded_stream``: a provider's per-read ``ChunkDecoder`` served to library callers (chunks)
and to the gateway (``RawChunk`` s under ``RAW_SSE``), with the same contract: the chunks before
an error in a read are delivered, then the error; ``done`` stops reading; ``end`` sees the rest."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from llm_factory_core import ChatCompletionChunk
from llm_factory_core._raw_sse import RAW_SSE, RawChunk
from llm_factory_core.providers import decoded_stream


def chunk(text: str) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {"id": "c1", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"content": text}}]}
    )


class Words:
    """One chunk per word of each read; ``!`` is an error, ``.`` ends the stream (``done``)."""

    def __init__(self) -> None:
        self.done = False
        self.ended = False

    def feed(self, piece: bytes, out: list[ChatCompletionChunk]) -> None:
        for word in piece.decode().split():
            if word == "!":
                raise ValueError("an error event")
            if word == ".":
                self.done = True
                return
            out.append(chunk(word))

    def end(self, out: list[ChatCompletionChunk]) -> None:
        self.ended = True
        out.append(chunk("<end>"))


async def pieces(*reads: bytes) -> Any:
    for read in reads:
        yield read


def response(*reads: bytes) -> httpx.Response:
    return httpx.Response(200, content=pieces(*reads))


async def library(decoder: Words, *reads: bytes) -> tuple[list[str], Exception | None]:
    seen: list[str] = []
    try:
        async for c in decoded_stream(response(*reads), decoder):
            seen.append(c.choices[0].delta.content or "")
    except ValueError as exc:
        return seen, exc
    return seen, None


async def gateway(decoder: Words, *reads: bytes) -> tuple[list[RawChunk], Exception | None]:
    token = RAW_SSE.set(True)
    seen: list[Any] = []
    try:
        async for c in decoded_stream(response(*reads), decoder):
            seen.append(c)
    except ValueError as exc:
        return seen, exc
    finally:
        RAW_SSE.reset(token)
    return seen, None


@pytest.mark.anyio
async def test_library_callers_get_every_chunk_and_the_end() -> None:
    decoder = Words()
    assert await library(decoder, b"a b", b"c") == (["a", "b", "c", "<end>"], None)
    assert decoder.ended


@pytest.mark.anyio
async def test_the_chunks_before_an_error_in_a_read_come_first() -> None:
    seen, error = await library(Words(), b"a", b"b ! c")
    assert seen == ["a", "b"] and str(error) == "an error event"
    raw, error = await gateway(Words(), b"a", b"b ! c")
    assert [len(r.frames) for r in raw] == [1, 1] and b'"b"' in raw[1].data() and error is not None


@pytest.mark.anyio
async def test_the_gateway_gets_one_raw_chunk_per_read_serialised_once() -> None:
    raw, error = await gateway(Words(), b"a b", b"c")
    assert error is None and [r.events for r in raw] == [2, 1, 1]  # the last: end()'s chunk
    assert raw[0].data() == b"".join(
        b"data: " + chunk(w).model_dump_json(exclude_none=True).encode() + b"\n\n" for w in "ab"
    )
    assert raw[0].has_content() and raw[0].texts == ["a", "b"]


@pytest.mark.anyio
@pytest.mark.parametrize("path", [library, gateway])
async def test_done_stops_reading_and_skips_the_end(path: Any) -> None:
    decoder = Words()
    seen, error = await path(decoder, b"a .", b"never read")
    assert error is None and len(seen) == 1 and not decoder.ended
