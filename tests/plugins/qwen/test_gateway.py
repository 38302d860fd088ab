"""The OpenAI SDK -> the llm-factory gateway -> the DashScope fake, over real sockets on both HTTP
transports and both DashScope APIs: what a gateway user's ``extra_body`` and ``reasoning_effort``
become upstream, and that a thinking model's plain call comes back whole. Needs the server
distribution (skipped in the plugin's own nox session, run in ``nox -s all``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from .conftest import make_factory, qwen_config
from .fake_dashscope import FakeDashScope, Turn

server = pytest.importorskip("llm_factory_server")
helpers = pytest.importorskip("tests.server.helpers")

MESSAGES: Any = [{"role": "user", "content": "6*7?"}]
TOOLS: Any = [{"type": "function", "function": {"name": "calc", "parameters": {"type": "object"}}}]


def params_of(sent: Any) -> dict[str, Any]:
    body = sent.body
    return dict(body["parameters"]) if "parameters" in body else dict(body)


@pytest.fixture
def gateway(fake: FakeDashScope, base: str) -> Iterator[Any]:
    factory = make_factory(fake, qwen_config(base, model_name="qwen3-32b"))
    with factory, helpers.serving(server.create_app(factory)) as running:
        yield running


@pytest.fixture
def sdk(gateway: Any) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(api_key="any-key", base_url=f"{gateway.url}/v1", max_retries=0)
    with client:
        yield client


def test_extra_body_reaches_dashscope_and_a_thinking_call_comes_back_whole(
    fake: FakeDashScope, sdk: openai.OpenAI
) -> None:
    fake.queue(Turn(pieces=["4", "2"], reasoning=["six ", "sevens"]))
    reply = sdk.chat.completions.create(
        model="qwen3-32b", messages=MESSAGES, extra_body={"enable_thinking": True, "top_k": 20}
    )
    sent = params_of(fake.requests[-1])
    assert (sent["enable_thinking"], sent["top_k"]) == (True, 20)
    assert reply.choices[0].message.content == "42"
    assert (reply.choices[0].message.model_extra or {}).get("reasoning_content") == "six sevens"
    assert reply.id.startswith("chatcmpl-") and reply.usage is not None


def test_reasoning_effort_and_required_through_the_gateway(fake: FakeDashScope, sdk: openai.OpenAI) -> None:
    fake.queue(Turn(pieces=["ok"]), Turn(pieces=["a", "b"], reasoning=["r"]))
    plain = sdk.chat.completions.create(model="qwen3-32b", messages=MESSAGES, tools=TOOLS, tool_choice="required")
    first = params_of(fake.requests[-1])
    assert first["tool_choice"] == "auto" and first["enable_thinking"] is False
    assert plain.choices[0].message.content == "ok"
    chunks = list(
        sdk.chat.completions.create(model="qwen3-32b", messages=MESSAGES, stream=True, reasoning_effort="low")
    )
    second = params_of(fake.requests[-1])
    assert (second["enable_thinking"], second["thinking_budget"]) == (True, 4096)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ab"
