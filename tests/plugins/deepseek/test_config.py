"""Configuring DeepSeek from the environment / a .env file and from YAML."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llm_factory_core import LLMFactory
from llm_factory_core.testing import serve_handler
from llm_factory_deepseek import DeepSeekProvider

from .fake_deepseek import FakeDeepSeek

KEYS = ("sk-deepseek-env-key-0001", "sk-deepseek-env-key-0002")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real variables win over the .env file; keep any real provider settings out of the test."""
    prefixes = ("DEEPSEEK_", "OPENAI_", "QWEN_", "CLAUDE_", "GEMINI_", "LLM_FACTORY_")
    for name in list(os.environ):
        if name.startswith(prefixes):
            monkeypatch.delenv(name)


@pytest.mark.anyio
async def test_env_file_configures_one_deployment_per_key(tmp_path: Path, http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(KEYS[1],))  # the first key is refused: failover to the second
    env = tmp_path / ".env"
    with serve_handler(fake) as base:
        env.write_text(
            f"DEEPSEEK_API_KEYS={KEYS[0]},{KEYS[1]}\n"
            "DEEPSEEK_MODEL=deepseek-reasoner\n"
            f"DEEPSEEK_API_BASE={base}\n"
            "DEEPSEEK_REASONING_HISTORY=strip\n"
            "LLM_FACTORY_STRATEGY=first_available\n"
        )
        async with LLMFactory.create(env_file=env, transport=http_transport, cooldown=5.0) as factory:
            assert [d.provider_cls for d in factory.deployments] == [DeepSeekProvider, DeepSeekProvider]
            assert {d.settings.reasoning_history for d in factory.deployments} == {"strip"}  # type: ignore[attr-defined]
            chunks = [c async for c in factory.stream_async("Hi", model="deepseek-reasoner")]
            states = [s.state for s in factory.status()]
    assert "".join(c.choices[0].delta.get("reasoning_content", "") for c in chunks) == "Let me think."
    assert states == ["disabled", "healthy"]
    assert [r.url.path for r in fake.requests] == ["/chat/completions"] * 2
    assert [r.headers["authorization"] for r in fake.requests] == [f"Bearer {k}" for k in KEYS]


@pytest.mark.anyio
async def test_env_api_base(tmp_path: Path, http_transport: str) -> None:
    fake = FakeDeepSeek(keys=(KEYS[0],))
    env = tmp_path / ".env"
    with serve_handler(fake) as base:
        env.write_text(f"DEEPSEEK_API_KEYS={KEYS[0]}\nDEEPSEEK_MODEL=deepseek-chat\nDEEPSEEK_API_BASE={base}/v1\n")
        async with LLMFactory.create(env_file=env, transport=http_transport) as factory:
            reply = await factory.chat_async("Hi")
    assert reply.choices[0].message.content == "Hello from DeepSeek"
    assert fake.requests[0].url.path == "/v1/chat/completions"


@pytest.mark.anyio
async def test_yaml_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_transport: str) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", KEYS[0])
    fake = FakeDeepSeek(keys=(KEYS[0],))
    path = tmp_path / "config.yaml"
    with serve_handler(fake) as base:
        path.write_text(
            "providers:\n"
            "  - provider: deepseek\n"
            "    model_name: flash\n"
            "    model: deepseek-flash\n"
            "    api_key: ${DEEPSEEK_API_KEY}\n"
            f"    api_base: {base}\n"
            "    reasoning_history: auto\n"
            "    chunk_timeout: 120\n"
        )
        async with LLMFactory.create_from_config(path, transport=http_transport) as factory:
            reply = await factory.chat_async("Hi", model="flash")
            assert factory.deployments[0].timeouts.chunk == 120
    assert reply.choices[0].message.get("reasoning_content") == "Let me think."  # V4 models think by default
    assert fake.bodies()[0]["model"] == "deepseek-flash"
