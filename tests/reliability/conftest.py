"""Shared set-up of the reliability tests: a primary model with one fallback, both served by a
``FaultyUpstream`` whose rules each test chooses, and small timeouts and cooldowns so every
scenario runs in well under a second or two.

The helpers take the upstream's base URL, so the server tests can reuse the same scenarios.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from llm_factory_core import ChatCompletionChunk, CompletionUsage, LLMFactory, ModelConfig
from llm_factory_core.testing import Fault, FaultyUpstream

PRIMARY_KEY = "sk-primary-test-key-0001"
BACKUP_KEY = "sk-backup-test-key-0002"
PROMPT = "Tell me something reliable."

ROUTER: dict[str, Any] = {
    "fallbacks": {"primary": ["backup"]},
    "num_retries": 2,
    "cooldown": 0.05,
    "cooldown_max": 0.2,
    "retry_backoff": 0.01,
    "retry_backoff_max": 0.05,
}
TIMEOUTS: dict[str, float] = {
    # first_token below chunk: the router's first-token limit, not the read timeout, decides
    # when a stream that sent only its headers is abandoned.
    "first_token_timeout": 0.3,
    "chunk_timeout": 0.5,
    "timeout": 1.0,
    "connect_timeout": 1.0,
}


def expected_text(model: str) -> str:
    return Fault.ok().text.replace("{model}", model)


def make_factory(base_url: str, *, timeouts: dict[str, float] | None = None, **router: Any) -> LLMFactory:
    """``primary`` and ``backup`` on the fake upstream, openai provider, small limits."""
    limits = {**TIMEOUTS, **(timeouts or {})}
    configs = [
        ModelConfig(provider="openai", model_name=name, name=name, api_base=base_url, api_key=key, **limits)
        for name, key in (("primary", PRIMARY_KEY), ("backup", BACKUP_KEY))
    ]
    return LLMFactory(configs, **{**ROUTER, **router})


@dataclass
class Outcome:
    """What a caller got, from a chat reply or a whole stream."""

    text: str = ""
    model: str | None = None
    deployment: str | None = None
    usage: CompletionUsage | None = None
    finish_reason: str | None = None
    chunks: list[ChatCompletionChunk] = field(default_factory=list)

    def add(self, chunk: ChatCompletionChunk) -> None:
        self.chunks.append(chunk)
        self.model = chunk.model
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            self.text += choice.delta.content or ""
            self.finish_reason = choice.finish_reason or self.finish_reason


async def ask(factory: LLMFactory, mode: str, *, into: Outcome | None = None, timeout: float | None = None) -> Outcome:
    """One call to ``primary``, non-streaming (``chat``) or streaming (``stream``, usage asked
    for). Chunks go into ``into`` as they arrive, so a test sees what came before an error."""
    out = into if into is not None else Outcome()
    if mode == "chat":
        reply = await factory.chat_async(PROMPT, model="primary", timeout=timeout)
        out.text = reply.choices[0].message.content or ""
        out.model, out.deployment, out.usage = reply.model, reply.deployment, reply.usage
        out.finish_reason = reply.choices[0].finish_reason
        return out
    stream = factory.stream_async(PROMPT, model="primary", timeout=timeout, stream_options={"include_usage": True})
    async with stream:
        async for chunk in stream:
            out.add(chunk)
            out.deployment = stream.deployment
    return out


def assert_answered_by(out: Outcome, model: str) -> None:
    """A complete answer from ``model``, naming it, with usage."""
    assert out.text == expected_text(model)
    assert out.model == model
    assert out.deployment == model
    assert out.finish_reason == "stop"
    assert out.usage is not None and out.usage.completion_tokens > 0
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens


@pytest.fixture(params=["chat", "stream"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    """Healthy by default; tests set ``primary`` / ``backup`` rules."""
    with FaultyUpstream() as server:
        yield server
