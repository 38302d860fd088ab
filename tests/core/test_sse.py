from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from llm_factory_core._bounded import LimitExceeded
from llm_factory_core._sse import DEFAULT_MAX_EVENT_BYTES, SSEReader, _Decoder, _split_lines
from llm_factory_core.providers import aiter_sse, decode_sse_lines


def test_whatwg_rules() -> None:
    events = decode_sse_lines(
        [
            "id:1",
            "event:result",
            ":HTTP_STATUS/200",
            'data:{"a":1}',
            "",
            ": keep-alive",
            "",
            "data: line1",
            "data:line2",
            "",
            "data: tail-without-blank",
        ]
    )
    assert [(e.id, e.event, e.data) for e in events] == [
        ("1", "result", '{"a":1}'),
        (None, None, "line1\nline2"),
        (None, None, "tail-without-blank"),
    ]
    assert events[0].comments == ["HTTP_STATUS/200"]


@pytest.mark.anyio
@pytest.mark.parametrize("sep", ["\n", "\r\n", "\r"])
async def test_line_endings(sep: str) -> None:
    body = f"data: one{sep}{sep}: comment{sep}data: two{sep}{sep}".encode()
    response = httpx.Response(200, content=body)
    assert [e.data async for e in aiter_sse(response)] == ["one", "two"]


# -- splitting: correct at every chunk boundary, linear, bounded --------------------------------

SPLIT_BODY = b"data: a\r\n\r\n: c\rdata: \xc3\xa9t\xc3\xa9\n\ndata: x\r\rdata: last"
SPLIT_LINES = ["data: a", "", ": c", "data: été", "", "data: x", "", "data: last"]


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _split(parts: list[bytes], max_line: int = DEFAULT_MAX_EVENT_BYTES) -> list[str]:
    return [line async for line in _split_lines(_chunks(parts), max_line)]


@pytest.mark.anyio
async def test_lines_are_the_same_wherever_the_chunks_are_cut() -> None:
    # Every cut into two and three pieces: a \r\n or a UTF-8 character split between two chunks.
    n = len(SPLIT_BODY)
    for i in range(n + 1):
        assert await _split([SPLIT_BODY[:i], SPLIT_BODY[i:]]) == SPLIT_LINES, i
        for j in range(i, n + 1):
            assert await _split([SPLIT_BODY[:i], SPLIT_BODY[i:j], SPLIT_BODY[j:]]) == SPLIT_LINES, (i, j)
    assert await _split([bytes([b]) for b in SPLIT_BODY]) == SPLIT_LINES


@pytest.mark.anyio
async def test_a_line_longer_than_the_cap_fails_naming_the_setting() -> None:
    with pytest.raises(LimitExceeded, match=r"max_event_bytes=1024 \(1 KiB\)"):
        await _split([b"data: ", b"x" * 600, b"x" * 600], max_line=1024)
    with pytest.raises(LimitExceeded, match="max_event_bytes=1024"):
        await _split([b"ok\n" + b"x" * 2000 + b"\n"], max_line=1024)  # a whole over-long line inside one chunk
    assert await _split([b"x" * 1024, b"\n"], max_line=1024) == ["x" * 1024]  # the cap itself is fine


def test_an_event_longer_than_the_cap_fails_naming_the_setting() -> None:
    decoder = _Decoder(max_event=100)
    for _ in range(9):
        assert decoder.feed("data: " + "x" * 11) is None
    with pytest.raises(LimitExceeded, match="an event of the upstream stream exceeded the limit max_event_bytes=100"):
        decoder.feed("data: " + "x" * 11)
    comments = _Decoder(max_event=100)
    with pytest.raises(LimitExceeded):  # comment lines without a blank line grow an event too
        for _ in range(20):
            comments.feed(": keep-alive")


@pytest.mark.parametrize("size", [1, 2, 5, 64, 1 << 20])
def test_the_per_read_reader_gives_the_events_however_the_reads_fall(size: int) -> None:
    raw = 'event: delta\r\ndata: {"a":\r\ndata: 1}\r\n\r\n: keep-alive\n\nid: 7\rdata: é\r\r\ndata: last'.encode()
    reader = SSEReader(1024)
    events = [e for at in range(0, len(raw), size) for e in reader.feed(raw[at : at + size])] + reader.end()
    assert [(e.event, e.data, e.id) for e in events] == [
        ("delta", '{"a":\n1}', None),
        (None, "é", "7"),
        (None, "last", None),
    ]


def test_the_per_read_reader_caps_an_event() -> None:
    reader = SSEReader(1024)
    with pytest.raises(LimitExceeded, match="max_event_bytes=1024"):
        for _ in range(20):
            reader.feed(b"data: " + b"x" * 100 + b"\n")
