"""The non-streamed pass-through (``llm_factory_core._raw_reply``, ``_chat``): an OpenAI
upstream's plain reply reaches an OpenAI client byte for byte, recorded as a parsed one is.

Over real sockets on both transports; the plain reply is OpenAI's own shape today (see
``tests/core/test_raw_reply.py``), and the official SDK reads what the gateway forwards."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest

from llm_factory_server.ops._db import default_path

from ..core.test_raw_reply import PLAIN
from .helpers import ServerThread, gateway_over
from .ops.test_keys_limits import eventually, rows

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


@contextmanager
def gateway(http_transport: str, reply: dict[str, Any], **settings: Any) -> Iterator[tuple[ServerThread, bytes]]:
    """The gateway over one upstream that answers every chat with ``reply`` (its bytes yielded)."""
    data = json.dumps(reply).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "application/json"}, content=data)

    with gateway_over(handler, http_transport, **settings) as server:
        yield server, data


def post(server: ServerThread) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", json=BODY, timeout=10)


def test_a_plain_reply_is_forwarded_byte_for_byte(http_transport: str) -> None:
    with gateway(http_transport, PLAIN) as (server, sent):
        reply = post(server)
    assert reply.status_code == 200 and reply.content == sent
    assert reply.headers["content-type"] == "application/json"
    assert int(reply.headers["content-length"]) == len(sent) and reply.headers["x-request-id"]


def test_the_official_sdk_reads_the_forwarded_reply(http_transport: str) -> None:
    with gateway(http_transport, PLAIN) as (server, _):
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        completion = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "Hello!" and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 8 and completion.service_tier == "default"


def test_usage_and_content_reach_the_log_and_the_usage_records(
    http_transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="llm_factory_server.access")
    with gateway(http_transport, PLAIN, log_content=True) as (server, sent):
        reply = post(server)
        eventually(lambda: len(_recorded()) == 1)
    assert reply.content == sent
    lines = [r.getMessage() for r in caplog.records if r.name == "llm_factory_server.access"]
    assert "tokens=19/10" in lines[0] and "reply='Hello!'" in lines[0], lines
    (row,) = rows()
    # The usage details travel too: the cached prompt tokens are priced as cache reads.
    assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"]) == (19, 10, 8)
    assert row["status"] == 200 and row["estimated"] == 0 and row["deployment"]


def _recorded() -> list[Any]:
    """The usage rows so far; none while the recorder is still creating its database."""
    try:
        return rows() if default_path().exists() else []
    except sqlite3.OperationalError:  # the file is there, its table not yet
        return []


def test_a_reply_with_tool_calls_takes_the_parsed_path_with_the_same_meaning(http_transport: str) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    choice = {**PLAIN["choices"][0], "finish_reason": "tool_calls"}
    choice["message"] = {**choice["message"], "content": None, "tool_calls": [call]}
    with gateway(http_transport, {**PLAIN, "choices": [choice]}) as (server, sent):
        reply = post(server)
    assert reply.status_code == 200 and reply.content != sent
    data = reply.json()
    assert data["choices"][0]["message"]["tool_calls"] == [call] and data["choices"][0]["finish_reason"] == "tool_calls"
    assert b"null" not in reply.content and data["usage"] == PLAIN["usage"]


def test_a_reply_without_an_id_or_model_is_completed_as_before(http_transport: str) -> None:
    bare = {k: v for k, v in PLAIN.items() if k not in ("id", "model")}
    with gateway(http_transport, bare) as (server, _):
        data = post(server).json()
    assert data["id"].startswith("chatcmpl-") and data["model"] == "gpt-4o"
    assert data["choices"][0]["message"]["content"] == "Hello!"
