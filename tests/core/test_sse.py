from __future__ import annotations

import httpx
import pytest

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
